"""The runs `megawatt` starts: in this process, yet recorded as runs of the code location the UI
loads (workspace.yaml), so they are in the job's Runs tab and the Overview timeline like the
UI's own; printed table by table as they finish; cancelled, not failed, by Ctrl-C.

Dagster's in-process execution takes no code-location origin, and its interruption is a
failure unless the run was being cancelled; both are set through the instance's event listener,
which sees every event of the run as it is stored."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import dagster as dg

from pipelines.alerts import ALERT_LOG, WEBHOOK_VARIABLE, AlertResource, alert_line, failure_message
from pipelines.assets import REPORT_STEP
from pipelines.errors import MegawattError
from pipelines.settings import PROJECT_DIR

# tags of the runs `megawatt` starts, to tell an interrupted one from one still going
HOST_TAG, PID_TAG = "megawatt/host", "megawatt/pid"
INVOCATION_TAG = "megawatt/invocation"  # finds a run that execute_job made, to follow it
FOLLOW_INTERVAL_S = 0.25  # how often an out-of-process run's new events are read
INTERRUPTED_EXIT = 130  # what a shell reports for a process ended by SIGINT (128 + 2)
TERMINAL_OUTPUT = {  # the run's output is the terminal, printed by Progress:
    # no capture (its helper processes, `tail` and dagster's watch_orphans, would each print a
    # KeyboardInterrupt traceback on Ctrl-C)
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    },
    # and no DEBUG line on the console from a step's process as it starts (its log manager is
    # Dagster's default, before the run's config applies); the history keeps every event and
    # the pipeline's INFO messages
    "python_logs": {"python_log_level": "INFO"},
}


class RunCanceled(MegawattError):
    """Ctrl-C: the run is CANCELED in Dagster, what it committed is published, no alert."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id
        which = f"run {run_id[:8]}" if run_id else "the run"
        super().__init__(
            f"interrupted: {which} was canceled; the tables it finished are published, the "
            "others keep their previous rows (run the same command again to finish)"
        )


def open_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME (its dagster.yaml), without capturing the runs' output."""
    from dagster._core.instance.ref import InstanceRef

    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    # a new home's storage is created on first open: two `megawatt` started together on one
    # would both create its tables ("table ... already exists"), so one creates, one waits
    with open(home / ".megawatt-open.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ref = InstanceRef.from_dir(str(home), overrides=TERMINAL_OUTPUT)
        return dg.DagsterInstance.from_ref(ref)


def location_job_origin(job_name: str):
    """The origin the UI gives `job_name`'s runs: its code location as workspace.yaml names it."""
    from dagster._core.definitions.repository_definition.valid_definitions import (
        SINGLETON_REPOSITORY_NAME,
    )
    from dagster._core.remote_origin import RemoteRepositoryOrigin
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    (location,) = WorkspaceFileTarget([str(PROJECT_DIR / "workspace.yaml")]).create_origins()
    return RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME).get_job_origin(job_name)


@dataclass
class Progress:
    """What a run prints as it goes, to `out`: a line per table as its step ends (days, rows
    written, checks, seconds) unless not `tables` (a backfill), warnings and failures as they
    happen; a `bar` (a backfill in a terminal) advances as tables end."""

    out: TextIO = sys.stderr
    tables: bool = True
    bar: object | None = None  # a tqdm bar counting days
    steps: int = 1  # the run's steps: each one ended moves the bar 1/steps of the run's days
    days: int = 1
    materialised: dict = field(default_factory=dict)  # step -> [days, metadata of the first]
    checks: dict = field(default_factory=dict)  # step -> [passed, warned, failed]
    parts: dict = field(default_factory=dict)  # a part's step -> what it wrote
    interrupted: bool = False

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def step_ended(self) -> None:
        if self.bar is not None:
            self.bar.update(self.days / self.steps)

    def table_line(self, step: str, seconds: float) -> str:
        days, metadata = self.materialised.get(step, [0, {}])
        passed, warned, failed = self.checks.get(step, [0, 0, 0])
        table, _, node = step.partition(".")  # a graph's step: a part, or the part's report
        label = table if node == REPORT_STEP else f"{node} part" if node else step
        written = self.parts.get(step)  # what a part's step wrote, or a table's
        if written is not None:
            span = f"{written['days_written']} day(s) written"
        elif not days:
            what = "no data: its stored days are kept"
        elif "rows_written" not in metadata:
            what = "view"
        else:
            written = metadata
            whole = metadata.get("window") == "whole table"
            span = "whole table" if whole else f"{days} day{'s' if days > 1 else ''}"
            changed = metadata.get("days_changed", days)
            if not whole and changed != days:  # the others were read and found unchanged
                span += f", {changed} changed" if changed else ", unchanged"
        if written is not None:
            what = f"{span:>20} {written['rows_written']:>10,} rows"
            if written.get("rows_quarantined"):
                what += f" ({written['rows_quarantined']:,} quarantined)"
        checked = passed + warned + failed
        verdict = (
            f"{checked} checks " + ("passed" if not (warned or failed) else
                                    f"{passed} passed, {warned} warned, {failed} failed")
            if checked else ""
        )  # fmt: skip
        return f"  {label:<28}{what:<37}{seconds:>6.1f} s  {verdict}".rstrip()

    def __call__(self, record) -> None:
        """The instance's listener: one stored event of the run."""
        event = record.dagster_event
        if event is None:  # a log message of the pipeline's own
            if record.level >= 30 and not _repeats_a_check(record.user_message):
                self.line(f"warning: {record.user_message}")
            return
        kind = event.event_type
        step = event.step_key
        if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            entry = self.materialised.setdefault(step, [0, None])
            entry[0] += 1
            if entry[1] is None:
                metadata = event.step_materialization_data.materialization.metadata
                entry[1] = {k: v.value for k, v in metadata.items()}
        elif kind == dg.DagsterEventType.STEP_OUTPUT:
            metadata = event.step_output_data.metadata
            if "part" in metadata:
                self.parts[step] = {k: v.value for k, v in metadata.items()}
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            check = event.event_specific_data
            counts = self.checks.setdefault(step, [0, 0, 0])
            if check.passed:
                counts[0] += 1
            elif check.severity == dg.AssetCheckSeverity.WARN:
                counts[1] += 1  # a warning, or rows quarantined: the run goes on
                self.line(f"warning: {check_line(check)}")
            else:
                counts[2] += 1
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            if self.tables:
                self.line(self.table_line(step, event.event_specific_data.duration_ms / 1000))
            self.step_ended()
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            if error is not None and error.cls_name == "DagsterExecutionInterruptedError":
                self.interrupted = True
            else:
                self.line(f"FAILED {failure_message(event)}")
            self.step_ended()
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            self.step_ended()


def _repeats_a_check(message: str) -> bool:
    """The writer logs each failed rule ("table: rule 'x' ... failed"); its check's warning line
    says it already, with the quarantine."""
    table, _, rest = message.partition(": ")
    return table.isidentifier() and rest.startswith("rule '")


def check_line(check) -> str:
    """One line for a failed (non-blocking) check: the rule, the count, the first failure."""
    meta = {k: v.value for k, v in check.metadata.items()}
    quarantined = meta.get("rows_quarantined", 0)
    return (
        f"{check.asset_key.to_user_string()}: check {check.check_name!r} failed for "
        f"{meta.get('failing_rows', '?')} row(s)"
        + (f", {quarantined} quarantined (table quarantine)" if quarantined else "")
        + f"; {meta.get('first_failure', '')}"
    )


def execute(job, instance, tags: dict, assets: list | None, progress: Progress, publish) -> bool:
    """One run of `job` (`assets` of it; None: all) with `tags`, recorded as the code
    location's, printed by `progress`; `publish(run_id)` after it ends, whatever its end (False:
    refused, and said why). In this process, or, when the job's executor runs a process per step
    (a profile's `multiprocess`), through Dagster's `execute_job`. Whether both went well; raises
    RunCanceled on Ctrl-C."""
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    origin = location_job_origin(job.name)
    tags = {**tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            # the tag the job's Runs tab filters by; the origin (set at its start) is its body's
            REPOSITORY_LABEL_TAG: origin.repository_origin.get_label()}  # fmt: skip
    # the listener prints; the full logs are in the history
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    run_id = None
    try:
        if job.executor_def.name == "in_process":
            run_id = str(uuid.uuid4())  # known before the run, for its listener
            result = _in_process(job, instance, run_id, tags, run_config, assets, progress, origin)
        else:
            result = _out_of_process(job, instance, tags, run_config, assets, progress, origin)
            run_id = result.run_id
    except KeyboardInterrupt as interrupted:  # between Dagster's own handling of it
        progress.interrupted = True
        run_id = run_id or getattr(interrupted, "run_id", None)
        result = None
    run = instance.get_run_by_id(run_id) if run_id else None
    if progress.interrupted or (run is not None and run.status == dg.DagsterRunStatus.CANCELED):
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, "Ctrl-C")
        publish(run_id if run is not None else None)
        raise RunCanceled(run_id if run is not None else None)
    if not result.success:  # the alert sensor does not see runs started here: tell it here
        failures = [
            record.dagster_event
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
        send_alert(alert_line(run, failures))
    return publish(run_id) and result.success


def _in_process(job, instance, run_id, tags, run_config, assets, progress, origin):
    """The run in this process: the instance's listener sees each event as it is stored."""

    def listen(record) -> None:
        event = record.dagster_event
        if event is not None and event.event_type == dg.DagsterEventType.RUN_START:
            run = instance.get_run_by_id(run_id)  # the UI lists a job's runs by their origin
            instance.run_storage.replace_job_origin(run, origin)
        progress(record)
        if progress.interrupted and event is not None and event.is_step_failure:
            # Ctrl-C in a step: cancelling, so Dagster ends the run CANCELED, not FAILURE
            instance.report_run_canceling(instance.get_run_by_id(run_id), "Ctrl-C")

    instance.add_event_listener(run_id, listen)
    try:
        return job.execute_in_process(
            instance=instance, run_id=run_id, tags=tags, run_config=run_config,
            asset_selection=assets, raise_on_error=False,
        )  # fmt: skip
    finally:
        instance.end_watch_event_logs(run_id, listen)


def _out_of_process(job, instance, tags, run_config, assets, progress, origin):
    """The run through Dagster's `execute_job`: its steps store their events from their own
    processes, so a thread reads the run's events from the instance as they are stored."""
    from pipelines.definitions import DAILY_JOB, daily_job

    if job.name != DAILY_JOB:
        raise MegawattError(f"only the daily job runs out of process here, not {job.name!r}")
    ours = str(uuid.uuid4())  # execute_job makes the run id: the run is found by this tag
    stop = threading.Event()
    found: list[str] = []
    follower = threading.Thread(
        target=_follow, args=(instance, ours, origin, progress, stop, found), daemon=True
    )
    follower.start()
    try:
        return dg.execute_job(
            dg.reconstructable(daily_job), instance, run_config=run_config,
            tags={**tags, INVOCATION_TAG: ours}, asset_selection=assets,
        )  # fmt: skip
    except KeyboardInterrupt as e:
        e.run_id = found[0] if found else None
        raise
    finally:
        stop.set()
        follower.join()


def _follow(instance, ours: str, origin, progress: Progress, stop, found: list) -> None:
    """Feed `progress` the events of the run tagged `ours` until `stop` is set, then the rest;
    at its start, give it the code location's origin, as the in-process listener does."""
    run_id, cursor = None, None
    while True:
        last = stop.wait(FOLLOW_INTERVAL_S)
        if run_id is None:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: ours}), limit=1)
            if not runs:
                if last:
                    return
                continue
            run_id = runs[0].run_id
            found.append(run_id)
            instance.run_storage.replace_job_origin(runs[0], origin)
        while True:
            batch = instance.get_records_for_run(run_id, cursor=cursor, limit=500)
            for record in batch.records:
                progress(record.event_log_entry)
            cursor = batch.cursor
            if not batch.has_more:
                break
        if last:
            return


def send_alert(line: str) -> None:
    """The alert line of a failed run, as the UI's runs get it from the run-failure sensor."""
    alerts = AlertResource(log_path=str(ALERT_LOG), webhook_url=os.environ.get(WEBHOOK_VARIABLE))
    try:
        alerts.send(line)
    except OSError as e:  # the failures are printed already
        print(f"warning: the alert was not sent: {type(e).__name__}", file=sys.stderr)


def release_interrupted_runs(instance) -> None:
    """Runs started here whose process is gone (killed, say) still hold their writer slot in
    Dagster's concurrency pool: mark them failed and free it, so the next run does not wait."""
    active = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=active, tags={HOST_TAG: socket.gethostname()})
    )
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and not _alive(pid):
            instance.report_run_failed(run, f"its process {pid} is gone: the run was interrupted")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
