"""Operating it: checks from contracts, blocking failures stop downstream assets, alerts on
failed runs, freshness and owners from the declarations, previews in the metadata."""

from __future__ import annotations

import json
import shutil

import dagster as dg

from pipelines.alerts import AlertResource, alert_on_run_failure
from pipelines.settings import SAMPLE_DATA_DIR


def _break_sample(project, tmp_path):
    """Point btc_network_daily at a sample copy with 2024-04-02 duplicated (a blocking rule)."""
    sample = tmp_path / "bad_sample"
    shutil.copytree(SAMPLE_DATA_DIR, sample)
    path = sample / "btc_network_daily.csv"
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("2024-04-02,"))
    lines.insert(line, lines[line])
    path.write_text("\n".join(lines) + "\n")
    sources = project.assets_dir / "sources.yaml"
    text = sources.read_text().replace(
        "  btc_network_daily:\n    group: network\n    description: Bitcoin network per UTC day, "
        "difficulty, blocks, subsidy, fees and price.\n    connectors:\n      sample: {}",
        "  btc_network_daily:\n    group: network\n    description: Bitcoin network per UTC day, "
        f"difficulty, blocks, subsidy, fees and price.\n    connectors:\n      sample: "
        f"{{data_dir: {sample}}}",
    )
    assert text != sources.read_text()
    sources.write_text(text)
    return path, line + 1


def test_checks_pass_on_the_sample_and_show_in_the_run(project):
    result = project.run("2024-04-02", "2024-04-03")
    assert result.success
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    checked = {(ev.asset_key.path[-1], ev.check_name) for ev in evaluations}
    assert ("mining_output_daily", "uptime_pct_range") in checked
    assert ("site_economics_daily", "better_use_consistent") in checked
    assert ("btc_network_daily", "within_partition") in checked
    assert all(ev.passed for ev in evaluations if ev.check_name != "luck_typical")


def test_a_blocking_failure_stops_downstream_and_keeps_the_tables(project, tmp_path):
    assert project.run("2024-04-02", "2024-04-03").success
    before = project.query("SELECT * FROM hashprice_daily ORDER BY ALL")
    path, line = _break_sample(project, tmp_path)
    result = project.run("2024-04-02", "2024-04-03", raise_on_error=False)
    assert not result.success
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert failed == ["btc_network_daily"]
    not_run = {"hashprice_daily", "mining_profitability_daily", "site_economics_daily"}
    ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert not_run.isdisjoint(ran), ran & not_run
    check = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "key_unique"
    )
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{path} rows [{line}, {line + 1}]" in check.metadata["first_failure"].value
    assert project.query("SELECT * FROM hashprice_daily ORDER BY ALL") == before


def test_failed_run_writes_an_alert_line_and_posts_the_webhook(project, tmp_path, httpserver):
    _break_sample(project, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    job = project.definitions().resolve_job_def("daily")
    result = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2024-04-02",
              "dagster/asset_partition_range_end": "2024-04-03"},
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    log = tmp_path / "alerts.log"
    alerts = AlertResource(log_path=str(log), webhook_url=httpserver.url_for("/hook"))
    run_failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=run_failure,
        resources={"alerts": alerts},
    ).for_run_failure()
    alert_on_run_failure(context)
    (line,) = log.read_text().splitlines()
    assert "RUN FAILED job=daily" in line and "days=2024-04-02..2024-04-03" in line
    assert "| btc_network_daily: 2 blocking rule(s) of " in line
    assert "nothing was written: - rule 'key_unique' (one row per (date)) failed" in line
    ((request, _),) = httpserver.log
    assert json.loads(request.data) == {"text": line}


def test_freshness_owner_and_preview_come_from_the_declarations(project):
    defs = project.definitions()
    graph = defs.resolve_asset_graph()
    raw = graph.get(dg.AssetKey("fx_rates_daily"))
    assert raw.freshness_policy.fail_window.to_timedelta().days == 4
    assert graph.get(dg.AssetKey("hashprice_daily")).owners == ["team:data-platform"]
    result = project.run("2024-04-02", "2024-04-03", defs=defs)
    first, last = [
        m.materialization for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("site_economics_daily")
    ]  # fmt: skip
    assert (first.partition, last.partition) == ("2024-04-02", "2024-04-03")
    # what is of the whole table is on the run's last day, not copied into every day
    assert {"dagster/row_count", "rows_written", "window"} <= set(first.metadata)
    assert not {"preview", "plot", "dagster/column_lineage"} & set(first.metadata)
    preview = last.metadata["preview"]
    assert [c.name for c in preview.schema.columns][:3] == ["date", "site_id", "scenario"]
    assert any(r.data["date"] == "2024-04-03" for r in preview.records)
    metadata = last.metadata
    assert metadata["plot"].value.startswith("![Margin per MWh by site")
    lineage = metadata["dagster/column_lineage"].value.deps_by_column
    assert (
        dg.TableColumnDep(
            asset_key=dg.AssetKey("mining_profitability_daily"), column_name="margin_usd"
        )
        in lineage["mining_margin_usd_per_mwh"]
    )
    assert {d.asset_key.path[-1] for d in lineage["ai_capex_usd_per_mw"]} == {"gpu_fleet", "sites"}


def test_drop_sensor_runs_the_days_of_new_or_changed_files_once(project, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    sample = (SAMPLE_DATA_DIR / "btc_network_daily.csv").read_text().splitlines()
    header, rows = sample[0], {line[:10]: line for line in sample[1:]}
    (drop / "network_2024-04-02.csv").write_text(f"{header}\n{rows['2024-04-02']}\n")
    sources = project.assets_dir / "sources.yaml"
    sources.write_text(
        sources.read_text().replace(
            "difficulty, blocks, subsidy, fees and price.\n    connectors:\n      sample: {}",
            f"difficulty, blocks, subsidy, fees and price.\n    connectors:\n"
            f"      file_drop: {{folder: {drop}}}",
        )
    )
    sensor = project.definitions().resolve_sensor_def("btc_network_daily_drop_sensor")

    def tick(cursor):
        context = dg.build_sensor_context(cursor=cursor)
        result = sensor(context)
        return result, context.cursor

    requests, cursor = tick(None)
    assert [r.partition_key for r in requests] == ["2024-04-02"]
    assert isinstance(tick(cursor)[0], dg.SkipReason)  # the same file version: nothing to do
    # a corrected export of that day and a new day's file: both days run once
    (drop / "network_2024-04-02_corrected.csv").write_text(f"{header}\n{rows['2024-04-02']}\n")
    (drop / "network_2024-04-03.csv").write_text(f"{header}\n{rows['2024-04-03']}\n")
    requests, cursor = tick(cursor)
    assert [r.partition_key for r in requests] == ["2024-04-02", "2024-04-03"]
    assert isinstance(tick(cursor)[0], dg.SkipReason)
    # and the run it asks for loads the drop folder
    result = project.run(
        "2024-04-02", "2024-04-03", asset_selection=[dg.AssetKey("btc_network_daily")]
    )
    assert result.success
    assert project.query("SELECT count(*) FROM btc_network_daily") == [(2,)]
