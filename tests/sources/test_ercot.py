"""ercot connector -> energy_prices_hourly: sign-in, paging, CPT hour-ending to UTC, DST."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.errors import DeclarationError
from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.ercot import ErcotConnector
from pipelines.sources.errors import SourceError

from .conftest import FAST, recorded, window

PASSWORD, KEY = "hunter2-password", "sub-key-0123456789"
USER = "ops.bot@miner.example"
ID_TOKEN = json.loads(recorded("ercot/token.json"))["id_token"]


@pytest.fixture
def ercot(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    monkeypatch.setenv("T_ERCOT_USER", "analyst@example.com")
    monkeypatch.setenv("T_ERCOT_PASSWORD", PASSWORD)
    monkeypatch.setenv("T_ERCOT_KEY", KEY)

    def token(request: Request) -> Response:
        assert request.form["password"] == PASSWORD and request.form["grant_type"] == "password"
        return Response(recorded("ercot/token.json"), content_type="application/json")

    def report(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {ID_TOKEN}":
            return Response('{"statusCode": 401, "message": "Unauthorized"}', status=401)
        assert request.headers.get("Ocp-Apim-Subscription-Key") == KEY
        assert request.args["settlementPoint"] == "HB_WEST"
        page = request.args.get("page", "1")
        body = recorded(f"ercot/spp_node_zone_hub_HB_WEST_page{page}.json")
        return Response(body, content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_handler(token)
    httpserver.expect_request(
        "/api/public-reports/np6-905-cd/spp_node_zone_hub"
    ).respond_with_handler(report)
    return httpserver


def connector(server: HTTPServer, **extra) -> ErcotConnector:
    settings = {
        "base_url": server.url_for("/api/public-reports"),
        "token_url": server.url_for("/token"),
        "zones": ["ERCOT_HB_WEST"],
        "username_env": "T_ERCOT_USER",
        "password_env": "T_ERCOT_PASSWORD",
        "subscription_key_env": "T_ERCOT_KEY",
        **FAST,
        **extra,
    }
    return build_connector("ercot", settings, "energy_prices_hourly", "t")


def test_registered():
    assert CONNECTORS["ercot"] is ErcotConnector


def test_fall_back_day_in_utc(ercot: HTTPServer):
    frame = connector(ercot).fetch("energy_prices_hourly", window("2024-11-03", "2024-11-04"), "ts")
    assert frame.height == 24
    assert set(frame["bidding_zone"]) == {"ERCOT_HB_WEST"} and set(frame["currency"]) == {"USD"}
    prices = dict(zip(frame["ts"], frame["price_per_mwh"], strict=True))
    # hour ending 02 happens twice: 01:00 CDT = 06:00 UTC, then (DSTFlag) 01:00 CST = 07:00 UTC
    assert prices["2024-11-03T06:00:00Z"] == 30.0
    assert prices["2024-11-03T07:00:00Z"] == 40.0
    assert set(frame["missing_intervals"]) == {0}  # 4 intervals in every UTC hour
    # 19:00 CDT on 2024-11-02 (hour ending 20) is 00:00 UTC: the mean of its 4 intervals
    assert prices["2024-11-03T00:00:00Z"] == pytest.approx(
        sum(round(22 + 8 * __import__("math").sin(20 / 24 * 2 * 3.141592653589793) + i * 0.25, 2)
            for i in range(1, 5)) / 4
    )  # fmt: skip
    assert KEY not in "".join(frame["_source"]) and "page=" in frame["_source"][0]
    assert len([r for r in ercot.log if "page=" in r[0].url]) == 2  # both pages read


def test_missing_credentials(ercot: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("T_ERCOT_KEY")
    with pytest.raises(SourceError, match="T_ERCOT_KEY .*subscription key.* is not set"):
        connector(ercot).fetch("energy_prices_hourly", window("2024-11-03", "2024-11-04"), "ts")


def test_empty_answer(httpserver: HTTPServer, ercot: HTTPServer):
    httpserver.clear_handler_errors()
    empty = json.loads(recorded("ercot/spp_node_zone_hub_HB_WEST_page1.json"))
    empty |= {"data": [], "_meta": {**empty["_meta"], "totalPages": 0, "totalRecords": 0}}
    httpserver.expect_oneshot_request(
        "/api/public-reports/np6-905-cd/spp_node_zone_hub"
    ).respond_with_json(empty)
    with pytest.raises(SourceError, match="no prices for settlement point HB_WEST"):
        connector(ercot).fetch("energy_prices_hourly", window("2024-11-03", "2024-11-04"), "ts")


def test_500_secrets_redacted(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    for name, value in [
        ("T_ERCOT_USER", USER),
        ("T_ERCOT_PASSWORD", PASSWORD),
        ("T_ERCOT_KEY", KEY),
    ]:
        monkeypatch.setenv(name, value)
    httpserver.expect_request("/token", method="POST").respond_with_data(
        recorded("ercot/token.json"), content_type="application/json"
    )
    httpserver.expect_request("/api/public-reports/np6-905-cd/spp_node_zone_hub").respond_with_data(
        f"gateway error for {KEY} ({USER})", status=502
    )
    with pytest.raises(SourceError, match=r"ercot .*spp_node_zone_hub\?.*HTTP 502") as e:
        connector(httpserver).fetch(
            "energy_prices_hourly", window("2024-11-03", "2024-11-04"), "ts"
        )
    assert KEY not in str(e.value) and PASSWORD not in str(e.value)
    assert USER not in str(e.value)  # the user name is a secret too


def test_zone_names():
    with pytest.raises(DeclarationError, match="zones"):
        build_connector("ercot", {"zones": ["HB_WEST"]}, "energy_prices_hourly", "t")
