"""mempool connector -> btc_network_daily, against recorded mempool.space responses."""

from __future__ import annotations

import re

import pytest
from pytest_httpserver import HTTPServer

from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.errors import SourceError
from pipelines.sources.mempool import MempoolConnector, subsidy_btc

from .conftest import FAST, window

DIFFICULTY = 86388558925171.02


def connector(server: HTTPServer, **settings) -> MempoolConnector:
    return build_connector(
        "mempool", {"base_url": server.url_for(""), **FAST, **settings}, "btc_network_daily", "t"
    )


def test_registered():
    assert CONNECTORS["mempool"] is MempoolConnector


@pytest.mark.parametrize(
    ("height", "btc"), [(0, 50.0), (209_999, 50.0), (210_000, 25.0), (839_999, 6.25),
                        (840_000, 3.125), (1_050_000, 1.5625)],
)  # fmt: skip
def test_subsidy_follows_height(height, btc):
    assert subsidy_btc(height) == btc


def test_halving_days(mempool: HTTPServer):
    c = connector(mempool)
    frame = c.fetch("btc_network_daily", window("2024-04-19", "2024-04-21"), "date")
    assert frame.columns == [
        "date", "difficulty", "hashrate_eh_s", "blocks", "first_height", "subsidy_btc",
        "fees_btc", "price_usd", "_source", "_row",
    ]  # fmt: skip
    rows = frame.to_dicts()
    assert [str(r["date"]) for r in rows] == ["2024-04-19", "2024-04-20"]
    before, halving = rows
    assert (before["blocks"], before["first_height"]) == (141, 839_859)
    assert before["subsidy_btc"] == 6.25
    assert halving["first_height"] == 840_000 and halving["subsidy_btc"] == 3.125
    assert halving["blocks"] == 145
    assert halving["fees_btc"] == pytest.approx(395.01108664)
    assert halving["price_usd"] == 64941.0 and before["price_usd"] == 63819.0
    assert halving["difficulty"] == DIFFICULTY
    assert halving["hashrate_eh_s"] == pytest.approx(DIFFICULTY * 2**32 * 145 / 86400 / 1e18)
    assert 500 < halving["hashrate_eh_s"] < 800
    assert halving["_row"] == 2 and halving["_source"].startswith(mempool.url_for("/api/v1/"))
    # 2 height look-ups + 300 blocks / 15 a page (+ margin) + 1 price a day
    assert c.http.requests_made <= 2 + 22 + 2


def test_one_day_partition_only_reads_that_day(mempool: HTTPServer):
    frame = connector(mempool).fetch(
        "btc_network_daily", window("2024-04-20", "2024-04-21"), "date"
    )
    assert frame["first_height"].to_list() == [840_000]


def test_day_without_blocks_has_no_row(mempool: HTTPServer):
    # the recorded chain ends 2024-04-21 01:00 UTC: 2024-04-22 has no block (yet)
    frame = connector(mempool).fetch(
        "btc_network_daily", window("2024-04-22", "2024-04-23"), "date"
    )
    assert frame.is_empty() and "first_height" in frame.columns


def test_missing_price_is_an_error(mempool: HTTPServer, httpserver: HTTPServer):
    httpserver.expect_oneshot_request("/api/v1/historical-price").respond_with_json(
        {"prices": [], "exchangeRates": {}}
    )
    with pytest.raises(
        SourceError, match=r"mempool .*historical-price\?currency=USD.*no USD price"
    ):
        connector(mempool).fetch("btc_network_daily", window("2024-04-20", "2024-04-21"), "date")


def test_block_without_fees_is_an_error(httpserver: HTTPServer, mempool: HTTPServer):
    httpserver.expect_oneshot_request(re.compile(r"^/api/v1/blocks/\d+$")).respond_with_json(
        [{"height": 840142, "timestamp": 1713657000, "difficulty": DIFFICULTY}]
    )
    with pytest.raises(SourceError, match=r"/api/v1/blocks/\d+: block without 'extras'"):
        connector(mempool).fetch("btc_network_daily", window("2024-04-20", "2024-04-21"), "date")
