"""The private parts of Dagster that pipelines/dagster_storage.py relies on (the local profile's
kept-open event log), and pipelines/runs.py (megawatt's runs as the code location's, without
output capture). A Dagster upgrade that moves one fails here, naming it, before the storage or
a run misbehaves at run time."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import dagster
import pytest

VERSION = dagster.__version__

# (module, name): what dagster_storage.py imports from Dagster's private modules
IMPORTED = [
    ("dagster._core.storage.event_log", "SqliteEventLogStorage"),
    ("dagster._core.storage.sqlite", "SQLITE_BUSY_TIMEOUT_SECONDS"),
    ("dagster._core.storage.sqlite_storage", "DagsterSqliteStorage"),
    ("dagster._core.storage.sqlite_storage", "_event_logs_directory"),
]
# what runs.py imports from Dagster's private modules, and the instance methods it calls
RUNS_IMPORTED = [
    ("dagster._core.instance.ref", "InstanceRef"),
    ("dagster._core.remote_origin", "RemoteRepositoryOrigin"),
    ("dagster._core.workspace.load_target", "WorkspaceFileTarget"),
    ("dagster._core.definitions.repository_definition.valid_definitions",
     "SINGLETON_REPOSITORY_NAME"),
    ("dagster._core.storage.tags", "REPOSITORY_LABEL_TAG"),
    ("dagster._core.storage.noop_compute_log_manager", "NoOpComputeLogManager"),
]  # fmt: skip
RUNS_CALLED = [
    ("dagster._core.instance", "DagsterInstance", "add_event_listener", ["self", "run_id", "cb"]),
    ("dagster._core.instance", "DagsterInstance", "end_watch_event_logs", ["self", "run_id", "cb"]),
    ("dagster._core.storage.runs", "RunStorage", "replace_job_origin",
     ["self", "run", "job_origin"]),
    ("dagster._core.instance.ref", "InstanceRef", "from_dir", ["base_dir"]),
]  # fmt: skip
# methods of SqliteEventLogStorage it overrides or calls, with their parameters
METHODS = {
    "_connect": ["self", "shard"],
    "_initdb": ["self", "engine"],
    "path_for_shard": ["self", "run_id"],
    "conn_string_for_shard": ["self", "shard_name"],
    "store_event": ["self", "event"],
    "wipe": ["self"],
    "dispose": ["self"],
}


@pytest.mark.parametrize(("module", "name"), IMPORTED, ids=[n for _, n in IMPORTED])
def test_the_private_names_imported_are_there(module, name):
    found = importlib.import_module(module)
    assert hasattr(found, name), f"dagster {VERSION}: {module}.{name} is gone (dagster_storage.py)"


@pytest.mark.parametrize(("module", "name"), RUNS_IMPORTED, ids=[n for _, n in RUNS_IMPORTED])
def test_the_private_names_runs_imports_are_there(module, name):
    found = importlib.import_module(module)
    assert hasattr(found, name), f"dagster {VERSION}: {module}.{name} is gone (runs.py)"


@pytest.mark.parametrize(("module", "owner", "method", "expected"), RUNS_CALLED,
                         ids=[f"{o}.{m}" for _, o, m, _ in RUNS_CALLED])  # fmt: skip
def test_the_methods_runs_calls_keep_their_parameters(module, owner, method, expected):
    function = getattr(getattr(importlib.import_module(module), owner), method, None)
    assert function is not None, f"dagster {VERSION}: {owner}.{method} is gone (runs.py)"
    parameters = list(inspect.signature(function).parameters)
    assert parameters[: len(expected)] == expected, (
        f"dagster {VERSION}: {owner}.{method}{inspect.signature(function)} changed (runs.py "
        f"expects ({', '.join(expected)}))"
    )


@pytest.mark.parametrize("method", list(METHODS))
def test_the_event_log_methods_keep_their_parameters(method):
    from dagster._core.storage.event_log import SqliteEventLogStorage

    function = getattr(SqliteEventLogStorage, method, None)
    assert function is not None, f"dagster {VERSION}: SqliteEventLogStorage.{method} is gone"
    parameters = list(inspect.signature(function).parameters)
    assert parameters[: len(METHODS[method])] == METHODS[method], (
        f"dagster {VERSION}: SqliteEventLogStorage.{method}{inspect.signature(function)} "
        f"changed (dagster_storage.py expects ({', '.join(METHODS[method])}))"
    )


def test_the_attributes_it_reads_are_set_by_dagster(tmp_path: Path):
    """The lock, the set of initialised shards and the storage's event log: set in Dagster's own
    __init__, which the project's classes run first."""
    from dagster._core.storage.event_log import SqliteEventLogStorage
    from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

    events = SqliteEventLogStorage(str(tmp_path / "events"))
    try:
        for name in ("_db_lock", "_initialized_dbs"):
            assert hasattr(events, name), f"dagster {VERSION}: SqliteEventLogStorage.{name} gone"
        assert isinstance(events._initialized_dbs, set)  # noqa: SLF001
    finally:
        events.dispose()
    storage = DagsterSqliteStorage.from_local(str(tmp_path / "storage"))
    try:
        assert isinstance(getattr(storage, "_event_log_storage", None), SqliteEventLogStorage), (
            f"dagster {VERSION}: DagsterSqliteStorage._event_log_storage is gone or changed"
        )
        assert storage.event_log_storage is storage._event_log_storage  # noqa: SLF001
    finally:
        storage.dispose()


def test_dagster_stores_events_through_the_connect_it_overrides(tmp_path: Path):
    """The kept-open log works only if Dagster's store_event opens its database through
    `_connect`: count the calls of the project's override while an event is stored."""
    from dagster._core.events.log import EventLogEntry

    from pipelines.dagster_storage import KeptOpenSqliteEventLogStorage

    storage = KeptOpenSqliteEventLogStorage(str(tmp_path / "events"))
    calls = []
    original = storage._connect  # noqa: SLF001

    def counted(shard):
        calls.append(shard)
        return original(shard)

    storage._connect = counted  # noqa: SLF001
    try:
        entry = EventLogEntry(
            error_info=None, level="INFO", user_message="hello", run_id="r1", timestamp=1.0,
            dagster_event=None, step_key=None, job_name="j",
        )  # fmt: skip
        storage.store_event(entry)
        assert "r1" in calls, f"dagster {VERSION}: store_event no longer opens through _connect"
        assert [e.user_message for e in storage.get_logs_for_run("r1")] == ["hello"]
    finally:
        storage.dispose()
