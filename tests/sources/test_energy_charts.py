"""energy_charts connector -> energy_prices_hourly, against recorded Energy-Charts answers."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.energy_charts import EnergyChartsConnector
from pipelines.sources.errors import SourceError

from .conftest import FAST, recorded, window

FILES = {
    ("SE1", "2024-03-31"): "SE1_2024-03-31.json",
    ("NO4", "2024-10-27"): "NO4_2024-10-27.json",
    ("SE1", "2025-10-26"): "SE1_2025-10-26_15min.json",
}


@pytest.fixture
def energy_charts(httpserver: HTTPServer) -> HTTPServer:
    def price(request: Request) -> Response:
        key = (request.args["bzn"], request.args["start"][:10])
        if key not in FILES:
            body = {"license_info": "", "unix_seconds": [], "price": [], "unit": "EUR / MWh"}
            return Response(json.dumps(body), content_type="application/json")
        return Response(recorded(f"energy_charts/{FILES[key]}"), content_type="application/json")

    httpserver.expect_request("/price").respond_with_handler(price)
    return httpserver


def connector(server: HTTPServer, zones: list[str]) -> EnergyChartsConnector:
    settings = {"base_url": server.url_for(""), "zones": zones, **FAST}
    return build_connector("energy_charts", settings, "energy_prices_hourly", "t")


def test_registered():
    assert CONNECTORS["energy_charts"] is EnergyChartsConnector


@pytest.mark.parametrize(("zone", "day"), [("SE1", "2024-03-31"), ("NO4", "2024-10-27")])
def test_dst_days_are_24_utc_hours(energy_charts: HTTPServer, zone: str, day: str):
    frame = connector(energy_charts, [zone]).fetch("energy_prices_hourly", _next(day), "ts")
    assert frame.columns == [
        "ts", "bidding_zone", "price_per_mwh", "currency", "missing_intervals", "_source", "_row",
    ]  # fmt: skip
    assert frame.height == 24  # the answer's 25th point (the end) is outside the day
    assert set(frame["missing_intervals"]) == {0}  # every hour complete
    assert frame["ts"][0] == f"{day}T00:00:00Z" and frame["ts"][23] == f"{day}T23:00:00Z"
    assert set(frame["currency"]) == {"EUR"} and set(frame["bidding_zone"]) == {zone}
    assert f"bzn={zone}" in frame["_source"][0] and frame["_row"].to_list() == list(range(1, 25))


def _next(day: str):
    from datetime import date, timedelta

    start = date.fromisoformat(day)
    return window(day, (start + timedelta(days=1)).isoformat())


def test_negative_prices_kept(energy_charts: HTTPServer):
    frame = connector(energy_charts, ["SE1"]).fetch(
        "energy_prices_hourly", _next("2024-03-31"), "ts"
    )
    assert frame.filter(frame["ts"] == "2024-03-31T06:00:00Z")["price_per_mwh"][0] == -0.35


def test_quarter_hours_to_hourly_means(energy_charts: HTTPServer):
    frame = connector(energy_charts, ["SE1"]).fetch(
        "energy_prices_hourly", _next("2025-10-26"), "ts"
    )
    assert frame.height == 24
    ten = frame.filter(frame["ts"] == "2025-10-26T10:00:00Z")
    assert ten["price_per_mwh"][0] == pytest.approx((-5.0 - 12.5 + 0.0 + 3.5) / 4)
    assert ten["_row"][0] == 41  # the hour's first quarter in the answer
    assert set(frame["missing_intervals"]) == {0}  # every hour has its 4 quarters


def test_two_zones(energy_charts: HTTPServer, httpserver: HTTPServer):
    frame = connector(energy_charts, ["SE1", "NO4"])
    # NO4 has no recorded answer for 2024-03-31: an empty answer is an error naming zone and URL
    with pytest.raises(
        SourceError, match=r"energy_charts .*/price\?bzn=NO4.*no prices for zone NO4"
    ):
        frame.fetch("energy_prices_hourly", _next("2024-03-31"), "ts")


def test_missing_hours(httpserver: HTTPServer):
    body = json.loads(recorded("energy_charts/SE1_2024-03-31.json"))
    body["unix_seconds"], body["price"] = body["unix_seconds"][:20], body["price"][:20]
    httpserver.expect_request("/price").respond_with_json(body)
    with pytest.raises(SourceError, match="zone SE1 has 20 of 24 UTC hours on 2024-03-31"):
        connector(httpserver, ["SE1"]).fetch("energy_prices_hourly", _next("2024-03-31"), "ts")


def test_wrong_unit(httpserver: HTTPServer):
    body = json.loads(recorded("energy_charts/SE1_2024-03-31.json")) | {"unit": "EUR / kWh"}
    httpserver.expect_request("/price").respond_with_json(body)
    with pytest.raises(SourceError, match=r"unit is 'EUR / kWh', expected 'EUR / MWh'"):
        connector(httpserver, ["SE1"]).fetch("energy_prices_hourly", _next("2024-03-31"), "ts")


def test_500_gives_up(httpserver: HTTPServer):
    httpserver.expect_request("/price").respond_with_data("Internal Server Error", status=500)
    with pytest.raises(SourceError, match=r"energy_charts .*/price\?bzn=SE1.*HTTP 500 .*after 2"):
        connector(httpserver, ["SE1"]).fetch("energy_prices_hourly", _next("2024-03-31"), "ts")


def test_zones_required():
    from pipelines.errors import DeclarationError

    with pytest.raises(DeclarationError, match="zones"):
        build_connector("energy_charts", {}, "energy_prices_hourly", "sources.yaml")
