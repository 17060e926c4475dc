"""vastai connector -> gpu_offers_observed, and the one GPU-name normaliser."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.errors import SourceError
from pipelines.sources.vastai import VastaiConnector, normalise_gpu

from .conftest import FAST, recorded, window

NOW = datetime(2024, 4, 20, 6, 0, 12, 345678, tzinfo=UTC)
NAMES = [
    ("H100 SXM5 80GB", ("H100", "SXM")),
    ("H100_SXM", ("H100", "SXM")),
    ("H100 SXM", ("H100", "SXM")),
    ("NVIDIA H100 80GB HBM3", ("H100", "SXM")),
    ("H100 PCIE", ("H100", "PCIe")),
    ("NVIDIA H100 PCIe", ("H100", "PCIe")),
    ("H100 NVL", ("H100", "NVL")),
    ("A100 SXM4", ("A100", "SXM")),
    ("A100-SXM4-80GB", ("A100", "SXM")),
    ("A100_PCIE", ("A100", "PCIe")),
    ("NVIDIA A100 80GB PCIe", ("A100", "PCIe")),
    ("H200", ("H200", "SXM")),
    ("GH200", ("GH200", "SXM")),
    ("RTX 4090", ("RTX 4090", "PCIe")),
    ("L40S", ("L40S", "PCIe")),
    ("RTX 3090", None),
]


@pytest.mark.parametrize(("name", "expected"), NAMES)
def test_normalise_gpu(name, expected):
    assert normalise_gpu(name) == expected


@pytest.fixture
def vast(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    monkeypatch.setattr(VastaiConnector, "now", staticmethod(lambda: NOW))

    def bundles(request: Request) -> Response:
        kind = json.loads(request.args["q"])["type"]
        return Response(recorded(f"vastai/bundles_{kind}.json"), content_type="application/json")

    httpserver.expect_request("/api/v0/bundles/").respond_with_handler(bundles)
    return httpserver


def connector(server: HTTPServer) -> VastaiConnector:
    settings = {"base_url": server.url_for(""), **FAST}
    return build_connector("vastai", settings, "gpu_offers_observed", "t")


def test_registered():
    assert CONNECTORS["vastai"] is VastaiConnector


def test_an_observation_is_every_offer_now(vast: HTTPServer):
    frame = connector(vast).fetch(
        "gpu_offers_observed", window("2024-04-20", "2024-04-21"), "observed_at"
    )
    assert set(frame["observed_at"]) == {NOW.replace(microsecond=0)}  # one time per observation
    assert set(frame["source"]) == {"vast.ai"}
    h100 = frame.filter(
        (frame["gpu_model"] == "H100")
        & (frame["gpu_variant"] == "SXM")
        & (frame["lease_type"] == "on-demand")
    )
    # 19.20/8 = 2.40, 2.60/1, 5.00/2 = 2.50 per GPU-hour: the listed price is per offer
    assert sorted(h100["price_usd_per_gpu_hour"].round(6)) == [2.40, 2.50, 2.60]
    assert sorted(h100["gpus"]) == [1, 2, 8]
    assert frame.select("offer_id", "lease_type").is_duplicated().sum() == 0
    spot = frame.filter(frame["lease_type"] == "spot")["gpu_model"]
    assert "H100" in spot and "RTX 3090" not in set(frame["gpu_model"])


def test_refuses_past_windows(vast: HTTPServer):
    with pytest.raises(SourceError, match=r"as they are now \(2024-04-20 06:00Z\).*2024-04-19"):
        connector(vast).fetch("gpu_offers_observed", window("2024-04-19", "2024-04-20"), "ts")


def test_bad_answer(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(VastaiConnector, "now", staticmethod(lambda: NOW))
    httpserver.expect_request("/api/v0/bundles/").respond_with_json({"error": "rate limited"})
    with pytest.raises(SourceError, match=r"vastai .*/api/v0/bundles/\?q=.*expected \{'offers'"):
        connector(httpserver).fetch(
            "gpu_offers_observed", window("2024-04-20", "2024-04-21"), "observed_at"
        )
