"""Run-failure alerts: one clear line per failed run, appended to a log file and, when the
environment sets MEGAWATT_ALERT_WEBHOOK, posted to that URL (Slack-style `{"text": ...}`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import requests

from pipelines.settings import DAGSTER_HOME


def failure_message(event: dg.DagsterEvent) -> str:
    """What went wrong in a failed step, after the step's name: our own message (which names
    its table), or the innermost error's."""
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        message = data.user_failure_data.description
    else:
        error = data.error
        while error.cause:
            error = error.cause
        message = error.message.strip()
    named = message.startswith(f"{event.step_key}:")
    return message if named else f"{event.step_key}: {message}"


WEBHOOK_VARIABLE = "MEGAWATT_ALERT_WEBHOOK"  # a URL that gets each alert line
ALERT_LOG = DAGSTER_HOME / "alerts.log"


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: a log file, and optionally a webhook (URL from the environment)."""

    log_path: str
    webhook_url: str | None = None

    def send(self, line: str) -> None:
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(line + "\n")
        if self.webhook_url:
            requests.post(self.webhook_url, json={"text": line}, timeout=10).raise_for_status()


def alert_line(run: dg.DagsterRun, step_failures: list[dg.DagsterEvent]) -> str:
    tags = run.tags
    days = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    if tags.get("dagster/asset_partition_range_end"):
        days = f"{days}..{tags['dagster/asset_partition_range_end']}"
    failures = (
        "; ".join(" ".join(failure_message(e).split()) for e in step_failures)
        or "the run failed before any step"
    )
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{when} RUN FAILED job={run.job_name} run={run.run_id} days={days} | {failures}"


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes one line per failed run to the alert log (and the webhook, if set).",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, alerts: AlertResource):
    alerts.send(alert_line(context.dagster_run, context.get_step_failure_events()))
