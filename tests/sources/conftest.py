"""Fixtures for the connectors: recorded responses served by a local HTTP server (no internet)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.batch import Window

RECORDED = Path(__file__).parent / "recorded"
FAST = {"retries": 2, "backoff_s": 0.0, "min_interval_s": 0.0, "timeout_s": 5.0}


def window(start: str, end: str) -> Window:
    return Window(date.fromisoformat(start), date.fromisoformat(end))


def mined_chain(
    length: int, first_height: int, stamp, rng, difficulty, fees: tuple[int, int]
) -> list[dict]:
    """`length` blocks in mempool.space's shape from `first_height`, lowest first: block i
    stamped `stamp(i)`, which must obey median-time-past (above the median of its 11 parents);
    `difficulty(height)`; ids, transactions and fees (in `fees`) drawn from `rng`."""
    chain: list[dict] = []
    for i in range(length):
        height, ts = first_height + i, stamp(i)
        parents = sorted(b["timestamp"] for b in chain[-11:])
        assert len(parents) < 11 or ts > parents[5], f"block {height} breaks median-time-past"
        chain.append({
            "id": f"{rng.getrandbits(256):064x}",
            "height": height,
            "timestamp": ts,
            "difficulty": difficulty(height),
            "tx_count": rng.randint(1500, 4500),
            "extras": {"totalFees": rng.randint(*fees), "reward": 0},
        })  # fmt: skip
    return chain


def recorded(path: str) -> str:
    return (RECORDED / path).read_text()


@pytest.fixture
def mempool(httpserver: HTTPServer) -> HTTPServer:
    """mempool.space's three endpoints, answering from the recorded chain around the halving."""
    blocks = json.loads(recorded("mempool/blocks.json"))  # highest first, as the API pages
    prices = json.loads(recorded("mempool/historical-price.json"))

    def at_timestamp(request: Request) -> Response:
        ts = int(request.path.rsplit("/", 1)[1])
        block = next(b for b in blocks if b["timestamp"] <= ts)
        body = {"height": block["height"], "hash": block["id"], "timestamp": block["timestamp"]}
        return Response(json.dumps(body), content_type="application/json")

    def page(request: Request) -> Response:
        height = int(request.path.rsplit("/", 1)[1])
        found = [b for b in blocks if b["height"] <= height][:15]
        return Response(json.dumps(found), content_type="application/json")

    def price(request: Request) -> Response:
        body = prices.get(request.args["timestamp"], {"prices": [], "exchangeRates": {}})
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request(
        re.compile(r"^/api/v1/mining/blocks/timestamp/\d+$")
    ).respond_with_handler(at_timestamp)
    httpserver.expect_request(re.compile(r"^/api/v1/blocks/\d+$")).respond_with_handler(page)
    httpserver.expect_request("/api/v1/historical-price").respond_with_handler(price)
    return httpserver
