"""entsoe connector -> energy_prices_hourly, against recorded A44 documents; the token is secret."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.entsoe import EntsoeConnector
from pipelines.sources.errors import SourceError

from .conftest import FAST, recorded, window

TOKEN = "0f1e2d3c-aaaa-bbbb-cccc-secret-token"
FILES = {
    ("10Y1001A1001A44P", "202403310000"): "SE1_2024-03-31.xml",
    ("10YNO-4--------9", "202510260000"): "NO4_2025-10-26_15min.xml",
}


@pytest.fixture
def entsoe(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    monkeypatch.setenv("TEST_ENTSOE_TOKEN", TOKEN)

    def api(request: Request) -> Response:
        if request.args.get("securityToken") != TOKEN:
            return Response("<html><body>Unauthorized</body></html>", status=401)
        assert request.args["documentType"] == "A44"
        name = FILES.get((request.args["in_Domain"], request.args["periodStart"]))
        xml = recorded(f"entsoe/{name or 'acknowledgement_no_data.xml'}")
        return Response(xml, content_type="text/xml")

    httpserver.expect_request("/api").respond_with_handler(api)
    return httpserver


def connector(server: HTTPServer, zones: list[str], **extra) -> EntsoeConnector:
    settings = {
        "base_url": server.url_for("/api"),
        "zones": zones,
        "token_env": "TEST_ENTSOE_TOKEN",
        **FAST,
        **extra,
    }
    return build_connector("entsoe", settings, "energy_prices_hourly", "t")


def test_registered():
    assert CONNECTORS["entsoe"] is EntsoeConnector


def test_hourly_dst_day_with_a03_gap(entsoe: HTTPServer):
    frame = connector(entsoe, ["SE1"]).fetch(
        "energy_prices_hourly", window("2024-03-31", "2024-04-01"), "ts"
    )
    assert frame.height == 24 and frame["ts"][0] == "2024-03-31T00:00:00Z"
    prices = dict(zip(frame["ts"], frame["price_per_mwh"], strict=True))
    assert prices["2024-03-31T00:00:00Z"] == 10.02
    # positions 8 and 9 are absent from the A03 curve: the price of position 7 holds
    assert prices["2024-03-31T05:00:00Z"] == prices["2024-03-31T06:00:00Z"] == -0.01
    assert prices["2024-03-31T07:00:00Z"] == -0.01
    assert prices["2024-03-31T22:00:00Z"] == 14.3  # from the next delivery day's series
    assert set(frame["missing_intervals"]) == {0}  # an A03 gap is no missing interval
    assert set(frame["currency"]) == {"EUR"}
    assert (
        TOKEN not in "".join(frame["_source"]) and "securityToken=REDACTED" in frame["_source"][0]
    )


def test_quarter_hours_finest_resolution_wins(entsoe: HTTPServer):
    frame = connector(entsoe, ["NO4"]).fetch(
        "energy_prices_hourly", window("2025-10-26", "2025-10-27"), "ts"
    )
    assert frame.height == 24
    assert frame["price_per_mwh"][0] == pytest.approx((18.0 + 18.73 + 19.45 + 20.16) / 4)
    assert 99.0 not in frame["price_per_mwh"].to_list()  # the PT60M series is not mixed in
    assert set(frame["missing_intervals"]) == {0}


def test_no_data_acknowledgement(entsoe: HTTPServer):
    with pytest.raises(SourceError, match=r"no prices for zone SE1: No matching data found") as e:
        connector(entsoe, ["SE1"]).fetch(
            "energy_prices_hourly", window("2030-01-01", "2030-01-02"), "ts"
        )
    assert TOKEN not in str(e.value)


def test_missing_token_env(entsoe: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TEST_ENTSOE_TOKEN")
    with pytest.raises(SourceError, match="environment variable TEST_ENTSOE_TOKEN .* is not set"):
        connector(entsoe, ["SE1"]).fetch(
            "energy_prices_hourly", window("2024-03-31", "2024-04-01"), "ts"
        )


def test_wrong_token_is_not_shown(entsoe: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_ENTSOE_TOKEN", "wrong-token-value")
    with pytest.raises(SourceError, match="HTTP 401") as e:
        connector(entsoe, ["SE1"]).fetch(
            "energy_prices_hourly", window("2024-03-31", "2024-04-01"), "ts"
        )
    assert "wrong-token-value" not in str(e.value) and "securityToken=REDACTED" in str(e.value)


def test_500_then_give_up_token_redacted(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_ENTSOE_TOKEN", TOKEN)
    httpserver.expect_request("/api").respond_with_data(f"oops {TOKEN}", status=503)
    with pytest.raises(SourceError, match=r"entsoe .*/api\?documentType=A44.*HTTP 503") as e:
        connector(httpserver, ["SE1"]).fetch(
            "energy_prices_hourly", window("2024-03-31", "2024-04-01"), "ts"
        )
    assert TOKEN not in str(e.value)


def test_truncated_xml(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_ENTSOE_TOKEN", TOKEN)
    httpserver.expect_request("/api").respond_with_data(recorded("entsoe/SE1_2024-03-31.xml")[:900])
    with pytest.raises(SourceError, match="not a valid XML document") as e:
        connector(httpserver, ["SE1"]).fetch(
            "energy_prices_hourly", window("2024-03-31", "2024-04-01"), "ts"
        )
    assert TOKEN not in str(e.value)


def test_unknown_zone():
    from pipelines.errors import DeclarationError

    with pytest.raises(DeclarationError, match=r"no EIC code for zone\(s\) \['XX9'\]"):
        build_connector("entsoe", {"zones": ["XX9"]}, "energy_prices_hourly", "t")
