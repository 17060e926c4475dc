"""An hour lacking one of its intervals is a rule, never a silent mean of the others.

The connectors count, per UTC hour, the intervals with a price against the hour's (60 / the
resolution in minutes) in `missing_intervals`; the contract's row rule `intervals_complete` sends
an incomplete hour to the quarantine, and the day's other hours are written. An hour without any
price is a missing hour (SourceError, as before). Answers are served by a local server, and go
through the real warehouse writer.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import yaml
from pytest_httpserver import HTTPServer

from pipelines.contracts import load_contracts, parse_contract
from pipelines.settings import CONTRACTS_DIR
from pipelines.sources import build_connector
from pipelines.sources.common import hourly_means
from pipelines.sources.errors import SourceError
from pipelines.warehouse import Warehouse

from .conftest import FAST, recorded, window

TABLE = "energy_prices_hourly"
DAY = window("2025-10-26", "2025-10-27")
TEN = "2025-10-26T10:00:00Z"
TEN_FIFTEEN = 41  # index of 10:15Z in the recorded SE1 answer (10:00Z is its row 41)


def _answer() -> dict:
    return json.loads(recorded("energy_charts/SE1_2025-10-26_15min.json"))


def _means(body: dict) -> dict[str, float]:
    """Each UTC hour's mean of its 4 quarter-hours in `body`, only where all 4 have a price."""
    quarters: dict[str, list] = {}
    for second, price in zip(body["unix_seconds"], body["price"], strict=True):
        hour = datetime.fromtimestamp(second, UTC).replace(minute=0)
        quarters.setdefault(hour.strftime("%Y-%m-%dT%H:%M:%SZ"), []).append(price)
    return {h: sum(p) / 4 for h, p in quarters.items() if len(p) == 4 and None not in p}


def _energy_charts(server: HTTPServer, body: dict, zones=("SE1",)):
    server.expect_request("/price").respond_with_json(body)
    settings = {"base_url": server.url_for(""), "zones": list(zones), **FAST}
    return build_connector("energy_charts", settings, TABLE, "t")


def _write(tmp_path, frame: pl.DataFrame, contracts_dir=CONTRACTS_DIR):
    contract = parse_contract(contracts_dir / f"{TABLE}.odcs.yaml")
    warehouse = Warehouse(tmp_path / "wh", contracts_dir=contracts_dir)
    report = warehouse.write(
        contract, frame, origin="test", window=DAY, partition_column="ts", answered_only=True
    )
    with warehouse.reader() as con:
        stored = con.execute(
            f"SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), price_per_mwh, "
            f"missing_intervals FROM {TABLE} ORDER BY ts"
        ).fetchall()
        quarantined = con.execute(
            "SELECT day::VARCHAR, source, row_number, rules, row_json FROM quarantine "
            "WHERE table_name = ? ORDER BY row_number",
            [TABLE],
        ).fetchall()
    return report, stored, quarantined


def test_a_null_quarter_hour_is_quarantined_not_averaged(httpserver: HTTPServer, tmp_path):
    body = _answer()
    body["price"][TEN_FIFTEEN] = None  # SE1 10:15Z has no price
    frame = _energy_charts(httpserver, body).fetch(TABLE, DAY, "ts")
    counts = dict(zip(frame["ts"], frame["missing_intervals"], strict=True))
    assert counts.pop(TEN) == 1 and set(counts.values()) == {0}

    report, stored, quarantined = _write(tmp_path, frame)
    # the hour is quarantined, naming the rule, the URL and the row of its first quarter
    assert len(quarantined) == 1
    day, source, row, rules, row_json = quarantined[0]
    assert (day, row, rules) == ("2025-10-26", TEN_FIFTEEN, "intervals_complete")
    assert "/price?bzn=SE1" in source
    assert json.loads(row_json)["missing_intervals"] == 1
    assert report.validation.rows_quarantined == 1
    failed = {r.rule.name for r in report.validation.failures}
    assert failed == {"intervals_complete"}  # hours_per_zone_day counts the hour set aside
    # the other 23 hours are written, each the mean of its 4 quarters: none of fewer
    means = _means(body)
    assert TEN not in means and len(means) == 23
    assert [h for h, _, _ in stored] == sorted(means)
    for hour, price, missing in stored:
        assert price == pytest.approx(means[hour]) and missing == 0, hour


def test_a_complete_day_is_stored_as_before(httpserver: HTTPServer, tmp_path):
    body = _answer()
    frame = _energy_charts(httpserver, body).fetch(TABLE, DAY, "ts")
    report, stored, quarantined = _write(tmp_path, frame)
    assert quarantined == [] and report.validation.failures == []
    means = _means(body)
    assert len(stored) == 24 and [h for h, _, _ in stored] == sorted(means)
    assert all(p == pytest.approx(means[h]) and m == 0 for h, p, m in stored)
    ten = next(p for h, p, _ in stored if h == TEN)
    assert ten == pytest.approx((-5.0 - 12.5 + 0.0 + 3.5) / 4)


def test_an_absent_quarter_hour_is_missing_too(httpserver: HTTPServer):
    body = _answer()
    del body["unix_seconds"][TEN_FIFTEEN], body["price"][TEN_FIFTEEN]  # no point at all
    frame = _energy_charts(httpserver, body).fetch(TABLE, DAY, "ts")
    counts = dict(zip(frame["ts"], frame["missing_intervals"], strict=True))
    assert counts.pop(TEN) == 1 and set(counts.values()) == {0}


def test_an_hour_without_any_price_is_a_missing_hour(httpserver: HTTPServer):
    body = _answer()
    for i in range(TEN_FIFTEEN - 1, TEN_FIFTEEN + 3):  # 10:00Z .. 10:45Z
        body["price"][i] = None
    with pytest.raises(
        SourceError,
        match=re.escape(
            "zone SE1 has 23 of 24 UTC hours on 2025-10-26 (no price in any interval of 10:00Z)"
        ),
    ):
        _energy_charts(httpserver, body).fetch(TABLE, DAY, "ts")


def test_the_switch_to_quarter_hours(httpserver: HTTPServer):
    """2025-09-30 UTC: hourly until 22:00Z (00:00 CEST on 2025-10-01), quarter-hourly since; the
    answer does not say which, the spacing of its timestamps does."""
    start = int(datetime(2025, 9, 30, tzinfo=UTC).timestamp())
    switch = start + 22 * 3600
    seconds = [*range(start, switch, 3600), *range(switch, start + 24 * 3600 + 1, 900)]
    body = _answer() | {"unix_seconds": seconds, "price": [50.0 + i for i in range(len(seconds))]}
    day = window("2025-09-30", "2025-10-01")
    frame = _energy_charts(httpserver, body).fetch(TABLE, day, "ts")
    assert frame.height == 24 and set(frame["missing_intervals"]) == {0}
    assert frame["price_per_mwh"][21] == 71.0  # 21:00Z: one hourly price
    assert frame["price_per_mwh"][22] == pytest.approx((72 + 73 + 74 + 75) / 4)

    httpserver.clear()
    body["price"][22 + 2] = None  # 22:30Z
    frame = _energy_charts(httpserver, body).fetch(TABLE, day, "ts")
    counts = dict(zip(frame["ts"], frame["missing_intervals"], strict=True))
    assert counts.pop("2025-09-30T22:00:00Z") == 1 and set(counts.values()) == {0}


def test_one_incomplete_zone_hour_leaves_the_other_zones_whole(httpserver: HTTPServer, tmp_path):
    se1 = _answer()
    se1["price"][TEN_FIFTEEN] = None
    no4 = _answer()  # the same prices, for a second zone, complete

    def answer(request):
        from werkzeug import Response

        body = se1 if request.args["bzn"] == "SE1" else no4
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/price").respond_with_handler(answer)
    settings = {"base_url": httpserver.url_for(""), "zones": ["SE1", "NO4"], **FAST}
    frame = build_connector("energy_charts", settings, TABLE, "t").fetch(TABLE, DAY, "ts")
    _, stored, quarantined = _write(tmp_path, frame)
    assert len(stored) == 47 and [r[3] for r in quarantined] == ["intervals_complete"]


def test_a_declared_tolerance_keeps_the_hour_with_its_count(httpserver: HTTPServer, tmp_path):
    contracts = tmp_path / "data_contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    path = contracts / f"{TABLE}.odcs.yaml"
    declared = yaml.safe_load(path.read_text())
    rule = next(q for q in declared["schema"][0]["quality"] if q["name"] == "intervals_complete")
    rule["implementation"] = "missing_intervals <= 1"  # one missing quarter-hour is tolerated
    path.write_text(yaml.safe_dump(declared, sort_keys=False))

    body = _answer()
    body["price"][TEN_FIFTEEN] = None
    frame = _energy_charts(httpserver, body).fetch(TABLE, DAY, "ts")
    report, stored, quarantined = _write(tmp_path, frame, contracts)
    assert quarantined == [] and report.validation.failures == []  # the hour counted once
    ten = next(r for r in stored if r[0] == TEN)
    assert ten[1:] == (pytest.approx((-5.0 + 0.0 + 3.5) / 3), 1)  # kept, with its count
    assert len(stored) == 24


def test_entsoe_a01_missing_position_is_quarantined(httpserver, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_ENTSOE_TOKEN", "t0ken")
    xml = recorded("entsoe/NO4_2025-10-26_15min.xml")
    # position 50 of the PT15M series (it starts 2025-10-25T22:00Z) is 10:15Z: left out
    point = re.compile(r"\s*<Point>\s*<position>50</position>.*?</Point>", re.S)
    xml = point.sub("", xml, count=1)
    httpserver.expect_request("/api").respond_with_data(xml, content_type="text/xml")
    settings = {"base_url": httpserver.url_for("/api"), "zones": ["NO4"],
                "token_env": "TEST_ENTSOE_TOKEN", **FAST}  # fmt: skip
    frame = build_connector("entsoe", settings, TABLE, "t").fetch(TABLE, DAY, "ts")
    counts = dict(zip(frame["ts"], frame["missing_intervals"], strict=True))
    assert counts.pop(TEN) == 1 and set(counts.values()) == {0}
    _, stored, quarantined = _write(tmp_path, frame)
    assert [(r[3], json.loads(r[4])["ts"]) for r in quarantined] == [
        ("intervals_complete", "2025-10-26 10:00:00+00")
    ]
    assert len(stored) == 23 and TEN not in [r[0] for r in stored]


def test_hourly_means_counts_an_absent_interval():
    midnight = datetime(2024, 11, 3, tzinfo=UTC)
    points = pl.DataFrame(
        {
            "ts": [midnight + timedelta(minutes=15 * i) for i in range(96)],
            "price_per_mwh": [20.0] * 96,
        }
    ).with_columns(
        pl.lit("ERCOT_HB_WEST").alias("bidding_zone"),
        pl.lit("USD").alias("currency"),
        pl.lit(15, pl.Int64).alias("resolution_min"),
        pl.lit("u").alias("_source"),
        pl.int_range(1, 97, dtype=pl.Int64).alias("_row"),
    )
    points = points.filter(pl.col("_row") != 7)  # 01:30Z
    hourly = hourly_means(points, window("2024-11-03", "2024-11-04"), "ercot")
    assert hourly["missing_intervals"].to_list() == [0, 1] + [0] * 22


def test_ercot_connector_counts_a_missing_interval(httpserver: HTTPServer, monkeypatch):
    for name in ("T_ERCOT_USER", "T_ERCOT_PASSWORD", "T_ERCOT_KEY"):
        monkeypatch.setenv(name, "x")
    pages = [json.loads(recorded(f"ercot/spp_node_zone_hub_HB_WEST_page{p}.json")) for p in (1, 2)]
    # 2024-11-03 hour ending 10, interval 2 (CST, after the fall-back): 15:15Z is left out
    dropped = ["2024-11-03", 10, 2]
    for page in pages:
        page["data"] = [r for r in page["data"] if r[:3] != dropped]
    assert sum(len(p["data"]) for p in pages) == 291

    def report(request):
        from werkzeug import Response

        body = pages[int(request.args.get("page", "1")) - 1]
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_data(
        recorded("ercot/token.json"), content_type="application/json"
    )
    httpserver.expect_request(
        "/api/public-reports/np6-905-cd/spp_node_zone_hub"
    ).respond_with_handler(report)
    settings = {"base_url": httpserver.url_for("/api/public-reports"),
                "token_url": httpserver.url_for("/token"), "zones": ["ERCOT_HB_WEST"],
                "username_env": "T_ERCOT_USER", "password_env": "T_ERCOT_PASSWORD",
                "subscription_key_env": "T_ERCOT_KEY", **FAST}  # fmt: skip
    frame = build_connector("ercot", settings, TABLE, "t").fetch(
        TABLE, window("2024-11-03", "2024-11-04"), "ts"
    )
    counts = dict(zip(frame["ts"], frame["missing_intervals"], strict=True))
    assert counts.pop("2024-11-03T15:00:00Z") == 1 and set(counts.values()) == {0}


def test_sample_and_files_without_the_column_read_null(tmp_path):
    from pipelines.sources.sample import SampleConnector

    day = window("2024-04-02", "2024-04-03")
    frame = SampleConnector().fetch(TABLE, day, "ts")
    assert frame["missing_intervals"].is_null().all()
    contract = load_contracts()[TABLE]
    report = Warehouse(tmp_path / "wh").write(
        contract, frame, origin="sample", window=day, partition_column="ts"
    )
    assert report.validation.failures == [] and report.validation.rows_quarantined == 0


def test_through_dagster_the_hour_is_quarantined(project, httpserver: HTTPServer):
    body = _answer()
    body["price"][TEN_FIFTEEN] = None
    httpserver.expect_request("/price").respond_with_json(body)
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"][TABLE]["connectors"]["energy_charts"] = {
        "base_url": httpserver.url_for(""),
        "zones": ["SE1"],
        **FAST,
    }
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
    settings = project.assets_dir / "settings.yaml"  # partitions up to the recorded day
    settings.write_text(settings.read_text().replace('end_date: "2024-05-20"', 'end_date: '
                                                     '"2025-10-31"', 1))  # fmt: skip

    result = project.run("2025-10-26", "2025-10-26", asset_selection=[dg.AssetKey(TABLE)])
    assert result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"intervals_complete"}
    assert project.query(f"SELECT count(*), sum(missing_intervals) FROM {TABLE}") == [(23, 0)]
    assert project.query(
        "SELECT rules, row_number FROM quarantine WHERE table_name = ?", [TABLE]
    ) == [("intervals_complete", TEN_FIFTEEN)]
