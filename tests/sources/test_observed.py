"""A source that can only be read now (vast.ai's offer book) is observed on its own schedule; a
day's prices summarise the observations made during it, and the daily run never reads it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest
import yaml
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.definitions import DAILY_JOB
from pipelines.settings import SAMPLE_DATA_DIR
from pipelines.sources.vastai import VastaiConnector
from tests.conftest import QUIET

from .conftest import FAST, recorded

DAY = "2024-04-20"
PRICES = (
    "SELECT gpu_model, gpu_variant, lease_type, source, price_usd_per_gpu_hour, "
    "p25_usd_per_gpu_hour, p75_usd_per_gpu_hour, offers, observations "
    f"FROM gpu_market_prices_daily WHERE date = DATE '{DAY}' ORDER BY ALL"
)


@pytest.fixture
def live(project, httpserver: HTTPServer, tmp_path):
    """The project with vast.ai observed from a local server, and GPU prices of the day made
    of its observations (and of drop files: none here)."""

    def bundles(request: Request) -> Response:
        kind = json.loads(request.args["q"])["type"]
        return Response(recorded(f"vastai/bundles_{kind}.json"), content_type="application/json")

    httpserver.expect_request("/api/v0/bundles/").respond_with_handler(bundles)
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["gpu_offers_observed"]["connectors"] = {
        "vastai": {"base_url": httpserver.url_for(""), **FAST}
    }
    quotes = tmp_path / "no_quotes"  # no daily rows but the observations' (a header only)
    quotes.mkdir()
    header = (SAMPLE_DATA_DIR / "gpu_market_prices_daily.csv").read_text().splitlines()[0]
    (quotes / "gpu_market_prices_daily.csv").write_text(header + "\n")
    prices = declared["sources"]["gpu_market_prices_daily"]
    prices["connectors"] = {"sample": {"data_dir": str(quotes)}}
    prices["observations"] = "gpu_market_prices_daily"
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
    return project


def _observe(project, monkeypatch, at: datetime):
    monkeypatch.setattr(VastaiConnector, "now", staticmethod(lambda: at))
    job = project.definitions().resolve_job_def("observe_gpu_offers_observed")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=DAY, run_config=QUIET
    )
    project.warehouse.publish(result.run_id)
    return result


def test_observations_append_and_the_day_summarises_them(live, monkeypatch):
    project = live
    first = _observe(project, monkeypatch, datetime(2024, 4, 20, 6, 0, 5, tzinfo=UTC))
    second = _observe(project, monkeypatch, datetime(2024, 4, 20, 7, 0, 3, tzinfo=UTC))
    assert first.success and second.success
    observed = pl.DataFrame(
        project.query("SELECT * FROM gpu_offers_observed ORDER BY ALL"),
        schema=["observed_at", "source", "offer_id", "lease_type", "gpu_model", "gpu_variant",
                "gpus", "price_usd_per_gpu_hour"],
        orient="row",
    )  # fmt: skip
    assert observed["observed_at"].n_unique() == 2  # the second appended to the first
    assert observed.height % 2 == 0 and observed.height > 0

    # the daily run for the day: it does not observe (vast.ai cannot list a past day)
    defs = project.definitions()
    daily = defs.resolve_job_def(DAILY_JOB)
    assert dg.AssetKey("gpu_offers_observed") not in daily.asset_layer.selected_asset_keys
    result = daily.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET,
        tags={ASSET_PARTITION_RANGE_START_TAG: DAY, ASSET_PARTITION_RANGE_END_TAG: DAY},
        asset_selection=[dg.AssetKey("gpu_market_prices_daily")],
    )  # fmt: skip
    assert result.success
    project.warehouse.publish(result.run_id)

    expected = (
        observed.group_by("gpu_model", "gpu_variant", "lease_type", "source")
        .agg(
            pl.col("price_usd_per_gpu_hour").median().alias("median"),
            pl.col("price_usd_per_gpu_hour").quantile(0.25, "linear").alias("p25"),
            pl.col("price_usd_per_gpu_hour").quantile(0.75, "linear").alias("p75"),
            pl.len().alias("offers"),
        )
        .sort("gpu_model", "gpu_variant", "lease_type", "source")
    )
    rows = project.query(PRICES)
    assert len(rows) == expected.height
    for row, want in zip(rows, expected.iter_rows(), strict=True):
        assert row[:4] == want[:4]
        assert row[4:7] == pytest.approx(want[4:7], rel=1e-12)
        assert (row[7], row[8]) == (want[7], 2)  # every offer of both observations; 2 of them

    # two observations are too few for a day: flagged by the contract's rule, not failed
    (check,) = [
        c for c in result.get_asset_check_evaluations()
        if c.check_name == "enough_observations"
    ]  # fmt: skip
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_the_observe_schedule_asks_for_today_only_when_it_is_a_partition(live):
    defs = live.definitions()
    schedule = defs.resolve_schedule_def("observe_gpu_offers_observed_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    at = datetime(2024, 4, 20, 13, 0, tzinfo=UTC)
    request = schedule(dg.build_schedule_context(scheduled_execution_time=at))
    assert request.partition_key == DAY
    after = datetime(2030, 1, 1, tzinfo=UTC)  # the sample's partitions end in 2024
    skipped = schedule(dg.build_schedule_context(scheduled_execution_time=after))
    assert "not a declared partition" in skipped.skip_message


def test_a_past_day_cannot_be_observed(live, monkeypatch):
    monkeypatch.setattr(
        VastaiConnector, "now", staticmethod(lambda: datetime(2024, 4, 21, 6, tzinfo=UTC))
    )
    job = live.definitions().resolve_job_def("observe_gpu_offers_observed")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=DAY, run_config=QUIET,
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "observes into today's partition only" in str(failure.event_specific_data.error)
