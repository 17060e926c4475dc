"""ecb connector -> fx_rates_daily, against a recorded ECB Data Portal csvdata answer."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.ecb import EcbConnector
from pipelines.sources.errors import SourceError

from .conftest import FAST, recorded, window

PATH = "/service/data/EXR/D.NOK+SEK+USD.EUR.SP00.A"
CSV = "ecb/EXR_D.NOK+SEK+USD.EUR.SP00.A_2024-04-19_2024-04-23.csv"


def connector(server: HTTPServer) -> EcbConnector:
    return build_connector("ecb", {"base_url": server.url_for(""), **FAST}, "fx_rates_daily", "t")


def test_registered():
    assert CONNECTORS["ecb"] is EcbConnector


def test_usd_per_unit_and_weekend(httpserver: HTTPServer):
    httpserver.expect_request(
        PATH, query_string="startPeriod=2024-04-19&endPeriod=2024-04-23&format=csvdata"
    ).respond_with_data(recorded(CSV), content_type="text/csv")
    frame = connector(httpserver).fetch(
        "fx_rates_daily", window("2024-04-19", "2024-04-24"), "date"
    )
    assert frame.columns == ["date", "currency", "usd_per_unit", "_source", "_row"]
    assert sorted(set(frame["date"])) == ["2024-04-19", "2024-04-22", "2024-04-23"]  # no weekend
    rate = {(r["date"], r["currency"]): r["usd_per_unit"] for r in frame.to_dicts()}
    assert rate[("2024-04-19", "EUR")] == 1.0656
    assert rate[("2024-04-19", "NOK")] == pytest.approx(1.0656 / 11.7345)
    assert rate[("2024-04-22", "SEK")] == pytest.approx(1.0651 / 11.6230)
    assert "USD" not in set(frame["currency"])
    assert frame["_source"][0].startswith(httpserver.url_for(PATH))


def test_weekend_only_window_is_empty(httpserver: HTTPServer):
    httpserver.expect_request(PATH).respond_with_data("No results found.", status=404)
    frame = connector(httpserver).fetch(
        "fx_rates_daily", window("2024-04-20", "2024-04-22"), "date"
    )
    assert frame.is_empty() and "usd_per_unit" in frame.columns


def test_not_csv(httpserver: HTTPServer):
    httpserver.expect_request(PATH).respond_with_data('{"error": "oops"}')
    with pytest.raises(SourceError, match=r"ecb .*EXR/D\.NOK\+SEK\+USD.*not the ECB's csvdata"):
        connector(httpserver).fetch("fx_rates_daily", window("2024-04-19", "2024-04-20"), "date")


def test_500_gives_up(httpserver: HTTPServer):
    httpserver.expect_request(PATH).respond_with_data("", status=500)
    with pytest.raises(SourceError, match=r"ecb \(fx_rates_daily\): http://.*HTTP 500 .*2 retries"):
        connector(httpserver).fetch("fx_rates_daily", window("2024-04-19", "2024-04-20"), "date")
