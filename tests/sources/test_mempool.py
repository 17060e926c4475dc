"""mempool connector -> btc_network_daily, against recorded mempool.space responses."""

from __future__ import annotations

import json
import random
import re
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.batch import Window
from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.common import unix
from pipelines.sources.errors import SourceError
from pipelines.sources.mempool import MempoolConnector, MempoolSettings, subsidy_btc

from .conftest import FAST, mined_chain, window

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
    # 2 height look-ups + 300 blocks / 15 a page (+ the margins) + 1 price a day
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


# A synthetic chain served the way mempool.space answers (its backend's queries): the timestamp
# look-up is the block with the *latest timestamp* at or before the time (times more than a day
# ahead are refused), and /blocks/{height} above the tip answers the blocks from the tip down
# to height - 14 (none at all from tip + 15 on). Blocks are mined every 10 minutes from
# 2024-04-18 18:00 UTC, with a retarget inside 2024-04-20 and out-of-order timestamps at every
# day boundary of the window 2024-04-19 .. 2024-04-20.
S, M, E = (unix(date(2024, 4, d)) for d in (19, 20, 21))  # the window's start, middle, end
RETARGET = 2016 * 447  # 901,152, mined on 2024-04-20
H0 = RETARGET - 250  # the first block, mined at S - 6 h
SHUFFLED = {  # height - H0: timestamp
    # around the start: the last block stamped before S (S - 30) is 38, and 35 and 37 below it
    # are stamped on the first day; 36 (S - 600) lies among the first day's heights
    35: S + 120, 36: S - 600, 37: S + 300, 38: S - 30, 39: S + 400,
    # around midnight inside the window: 180 is stamped on the first day, above 179 of the second
    179: M + 100, 180: M - 200, 181: M + 400,
    # around the end: the last block stamped before E is 323 (E - 100); 325 above it is stamped
    # on the last day, 324 below it on the next day
    323: E - 100, 324: E + 200, 325: E - 300, 326: E + 500,
}  # fmt: skip


def synthetic_chain(length: int = 361) -> list[dict]:
    """Blocks H0 .. H0 + length - 1 (by default up to E + 6 h), lowest first."""
    rng = random.Random(7)
    return mined_chain(
        length, H0, lambda i: SHUFFLED.get(i, S - 6 * 3600 + 600 * i + rng.randint(-120, 120)),
        rng, lambda height: DIFFICULTY * (1.0 if height < RETARGET else 1.0421),
        (2_000_000, 90_000_000),
    )  # fmt: skip


def serve(server: HTTPServer, chain: list[dict]) -> list[int]:
    """Serves `chain` at `server`'s mempool.space endpoints; returns the looked-up times."""
    by_height = {b["height"]: b for b in chain}
    tip = max(by_height)
    asked: list[int] = []

    def at_timestamp(request: Request) -> Response:
        ts = int(request.path.rsplit("/", 1)[1])
        asked.append(ts)
        if ts > time.time() + 86400:  # mempool refuses a time more than a day ahead
            return Response("Failed to get height from timestamp", status=500)
        block = max((b for b in chain if b["timestamp"] <= ts), key=lambda b: b["timestamp"])
        body = {"height": block["height"], "hash": block["id"], "timestamp": block["timestamp"]}
        return Response(json.dumps(body), content_type="application/json")

    def page(request: Request) -> Response:
        height, limit = int(request.path.rsplit("/", 1)[1]), 15
        if height > tip:
            height, limit = tip, limit - (height - tip)
        found = [by_height[h] for h in range(height, height - limit, -1) if h in by_height]
        return Response(json.dumps(found), content_type="application/json")

    def price(request: Request) -> Response:
        ts = int(request.args["timestamp"])
        body = {"prices": [{"time": ts, "USD": price_at(ts)}], "exchangeRates": {}}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request(
        re.compile(r"^/api/v1/mining/blocks/timestamp/\d+$")
    ).respond_with_handler(at_timestamp)
    server.expect_request(re.compile(r"^/api/v1/blocks/\d+$")).respond_with_handler(page)
    server.expect_request("/api/v1/historical-price").respond_with_handler(price)
    return asked


def price_at(ts: int) -> float:
    return 60_000.0 + ts // 86400 % 1000


def chain_days(chain: list[dict], start: str, end: str) -> list[dict]:
    """What the chain says per UTC day of [start, end): each block counts on its timestamp's day."""
    per_day: dict[date, list[dict]] = {}
    for b in chain:
        day = datetime.fromtimestamp(b["timestamp"], UTC).date()
        if date.fromisoformat(start) <= day < date.fromisoformat(end):
            per_day.setdefault(day, []).append(b)
    return [
        {
            "date": day,
            "blocks": len(bs),
            "first_height": min(b["height"] for b in bs),
            "fees_btc": sum(b["extras"]["totalFees"] for b in bs) / 1e8,
            "difficulty": sum(b["difficulty"] for b in bs) / len(bs),
            "hashrate_eh_s": sum(b["difficulty"] for b in bs) * 2**32 / 86400 / 1e18,
            "price_usd": price_at(unix(day + timedelta(days=1)) - 1),
        }
        for day, bs in sorted(per_day.items())
    ]


def assert_days(frame, expected: list[dict]) -> None:
    got = frame.select(
        "date", "blocks", "first_height", "fees_btc", "difficulty", "hashrate_eh_s", "price_usd"
    ).to_dicts()
    assert [r["date"] for r in got] == [e["date"] for e in expected]
    for row, want in zip(got, expected, strict=True):
        assert (row["blocks"], row["first_height"]) == (want["blocks"], want["first_height"])
        for column in ("fees_btc", "difficulty", "hashrate_eh_s", "price_usd"):
            assert row[column] == pytest.approx(want[column], rel=1e-12), (row["date"], column)


def test_synthetic_chain_has_blocks_out_of_order_at_both_ends():
    """The fixture itself: what a connector reading from the look-ups' heights only would miss."""
    chain = synthetic_chain()

    def looked_up(ts: int) -> int:
        return max((b for b in chain if b["timestamp"] <= ts), key=lambda b: b["timestamp"])[
            "height"
        ]

    def day(b: dict) -> date:
        return datetime.fromtimestamp(b["timestamp"], UTC).date()

    end_block, start_block = looked_up(E - 1), looked_up(S - 1)
    assert (end_block, start_block) == (H0 + 323, H0 + 38)
    above_end = [b["height"] for b in chain if b["height"] > end_block and b["timestamp"] < E]
    below_start = [b["height"] for b in chain if b["height"] < start_block and b["timestamp"] >= S]
    assert above_end == [H0 + 325] and below_start == [H0 + 35, H0 + 37]
    assert day(chain[180]) == date(2024, 4, 19) and day(chain[179]) == date(2024, 4, 20)
    assert day(chain[324]) == date(2024, 4, 21) and day(chain[36]) == date(2024, 4, 18)


@pytest.mark.parametrize("margin_hours", [0, 3, 12])
@pytest.mark.parametrize(
    ("start", "end"),
    [("2024-04-19", "2024-04-21"), ("2024-04-19", "2024-04-20"), ("2024-04-20", "2024-04-21")],
)
def test_days_equal_the_chain_with_out_of_order_timestamps(
    httpserver: HTTPServer, start, end, margin_hours
):
    chain = synthetic_chain()
    serve(httpserver, chain)
    c = connector(httpserver, margin_hours=margin_hours)
    frame = c.fetch("btc_network_daily", window(start, end), "date")
    expected = chain_days(chain, start, end)
    assert_days(frame, expected)
    assert frame["subsidy_btc"].to_list() == [3.125] * len(expected)
    n_days = len(expected)
    # 2 look-ups + the days' blocks with 15 below and margin_hours (or 2 pages) above, 15 a
    # page + 1 price a day
    pages = -(-(144 * n_days + 15 + max(6 * margin_hours, 30)) // 15)
    assert c.http.requests_made <= 2 + pages + 1 + n_days


def test_the_days_at_the_ends_of_the_window(httpserver: HTTPServer):
    chain = synthetic_chain()
    serve(httpserver, chain)
    frame = connector(httpserver, margin_hours=0).fetch(
        "btc_network_daily", window("2024-04-19", "2024-04-21"), "date"
    )
    first, last = frame.to_dicts()
    # the first day starts at 35, below the last block stamped before it (38); 36 is not its own
    assert first["first_height"] == H0 + 35
    assert first["blocks"] == len([b for b in chain if S <= b["timestamp"] < M])
    # the last day holds 179 (below 180 of the first day) .. 323 and 325, not 324
    heights = [H0 + i for i in range(179, 326) if i not in (180, 324)]
    assert last["first_height"] == H0 + 179 and last["blocks"] == len(heights) == 145
    fees = sum(b["extras"]["totalFees"] for b in chain if b["height"] in heights)
    assert last["fees_btc"] == pytest.approx(fees / 1e8)


@pytest.mark.parametrize("length", [326, 327])
def test_margin_past_the_tip(httpserver: HTTPServer, length):
    """The chain ends just after the window (326: its tip is 325, stamped before the end, below
    324 stamped after it, which the look-up answers; 327: the tip 326 is the look-up's answer):
    the connector reads up to the tip and counts the last day's blocks so far."""
    chain = synthetic_chain(length)
    serve(httpserver, chain)
    c = connector(httpserver)
    frame = c.fetch("btc_network_daily", window("2024-04-20", "2024-04-21"), "date")
    assert_days(frame, chain_days(chain, "2024-04-20", "2024-04-21"))
    assert frame["_source"][0].startswith(
        httpserver.url_for(f"/api/v1/blocks/{{{H0 + 180 - 15}..{H0 + 325 + length - 326}}}")
    )


def test_future_days_ask_no_time_the_api_refuses(httpserver: HTTPServer):
    asked = serve(httpserver, synthetic_chain())
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    frame = connector(httpserver, margin_hours=12).fetch(
        "btc_network_daily", Window(tomorrow, tomorrow + timedelta(days=2)), "date"
    )
    assert frame.is_empty()
    assert asked and max(asked) <= time.time() + 86400


def test_a_gap_in_the_heights_is_an_error(httpserver: HTTPServer):
    chain = synthetic_chain()
    serve(httpserver, chain)
    holed = [b for b in reversed(chain[300:342]) if b["height"] != H0 + 335]
    httpserver.expect_oneshot_request(re.compile(r"^/api/v1/blocks/\d+$")).respond_with_json(
        holed[:15]
    )
    with pytest.raises(SourceError, match=f"no block at height {H0 + 335}"):
        connector(httpserver).fetch("btc_network_daily", window("2024-04-20", "2024-04-21"), "date")


def test_timestamps_that_never_pass_the_end_are_an_error(httpserver: HTTPServer):
    # not a valid chain (median-time-past must rise): from 200 on, every block is stamped just
    # before the end, so reading up never shows a block that closes the window
    chain = synthetic_chain()[:200]
    chain += [{**chain[-1], "height": H0 + i, "timestamp": E - 10} for i in range(200, 600)]
    serve(httpserver, chain)
    with pytest.raises(SourceError, match="still timestamped around the window's end"):
        connector(httpserver, margin_hours=0).fetch(
            "btc_network_daily", window("2024-04-20", "2024-04-21"), "date"
        )


@pytest.mark.parametrize("margin_hours", [-1, 12.5])
def test_margin_hours_is_bounded(margin_hours):
    with pytest.raises(ValidationError, match="margin_hours"):
        MempoolSettings(margin_hours=margin_hours)
