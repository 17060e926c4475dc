"""vastai connector -> gpu_market_prices_daily, and the one GPU-name normaliser."""

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
    monkeypatch.setattr(
        VastaiConnector, "today", staticmethod(lambda: datetime(2024, 4, 20, 6, tzinfo=UTC))
    )

    def bundles(request: Request) -> Response:
        kind = json.loads(request.args["q"])["type"]
        return Response(recorded(f"vastai/bundles_{kind}.json"), content_type="application/json")

    httpserver.expect_request("/api/v0/bundles/").respond_with_handler(bundles)
    return httpserver


def connector(server: HTTPServer) -> VastaiConnector:
    settings = {"base_url": server.url_for(""), **FAST}
    return build_connector("vastai", settings, "gpu_market_prices_daily", "t")


def test_registered():
    assert CONNECTORS["vastai"] is VastaiConnector


def test_today_summary(vast: HTTPServer):
    frame = connector(vast).fetch(
        "gpu_market_prices_daily", window("2024-04-20", "2024-04-21"), "date"
    )
    rows = {(r["gpu_model"], r["gpu_variant"], r["lease_type"]): r for r in frame.to_dicts()}
    h100 = rows[("H100", "SXM", "on-demand")]
    # 19.20/8 = 2.40, 2.60/1, 5.00/2 = 2.50 per GPU-hour: the listed price is per offer
    assert h100["offers"] == 3 and h100["price_usd_per_gpu_hour"] == pytest.approx(2.50)
    assert h100["p25_usd_per_gpu_hour"] == pytest.approx(2.45)
    assert h100["p75_usd_per_gpu_hour"] == pytest.approx(2.55)
    assert rows[("H100", "SXM", "spot")]["price_usd_per_gpu_hour"] == pytest.approx(1.35)
    assert rows[("A100", "SXM", "on-demand")]["price_usd_per_gpu_hour"] == pytest.approx(1.10)
    assert ("H100", "PCIe", "on-demand") in rows and ("RTX 4090", "PCIe", "on-demand") in rows
    assert set(frame["source"]) == {"vast.ai"} and set(frame["date"]) == {"2024-04-20"}
    assert all(r[1] != "RTX 3090" for r in rows)


def test_refuses_past_windows(vast: HTTPServer):
    with pytest.raises(SourceError, match=r"lists today's offers only.*\(2024-04-20\).*2024-04-19"):
        connector(vast).fetch("gpu_market_prices_daily", window("2024-04-19", "2024-04-20"), "date")


def test_bad_answer(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        VastaiConnector, "today", staticmethod(lambda: datetime(2024, 4, 20, tzinfo=UTC))
    )
    httpserver.expect_request("/api/v0/bundles/").respond_with_json({"error": "rate limited"})
    with pytest.raises(SourceError, match=r"vastai .*/api/v0/bundles/\?q=.*expected \{'offers'"):
        connector(httpserver).fetch(
            "gpu_market_prices_daily", window("2024-04-20", "2024-04-21"), "date"
        )
