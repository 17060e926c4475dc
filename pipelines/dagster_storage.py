"""Dagster's own SQLite storage for this project's instance (dagster_home/dagster.yaml), with its
event log kept open.

Dagster's SQLite event log opens a database, commits with a full sync and closes it (which
checkpoints the WAL) for every event it stores. A run of the sample period stores ~3,200 events
(a materialisation and its planned event per asset and day, one per check), and the main job spent
half its time recording what it did. This keeps one connection per database file, with
`synchronous=NORMAL` (in WAL mode: no sync per commit; a power cut may lose the last events, never
the database). Same files, schema and layout as Dagster's default, so the UI, the daemon and older
history read it as before.

The UI follows a running run by watching its database file, which changes when the WAL is
checkpointed: a run's file is checkpointed at most every CHECKPOINT_SECONDS, and when it ends.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.events import EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.pool import StaticPool

OPEN_SHARDS = 8  # databases kept open at once (the index and the latest runs')
CHECKPOINT_SECONDS = 0.5


def _no_sync_per_commit(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage that keeps a connection per database file instead of one per event."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._checkpointed: dict[str, float] = {}

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:  # one user of the connection at a time, as in Dagster's
            engine = self._engines.get(shard)
            if engine is None:
                engine = db.create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=StaticPool,  # the one connection, guarded by the lock
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                  "check_same_thread": False},
                )  # fmt: skip
                db.event.listen(engine, "connect", _no_sync_per_commit)
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                self._engines[shard] = engine
                while len(self._engines) > OPEN_SHARDS:  # a long-lived UI reads many runs
                    self._engines.popitem(last=False)[1].dispose()
            self._engines.move_to_end(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event(self, event) -> None:
        super().store_event(event)
        run_id = event.run_id
        ends_run = event.is_dagster_event and (
            event.dagster_event_type in EVENT_TYPE_TO_PIPELINE_RUN_STATUS
        )
        last = self._checkpointed.get(run_id, 0.0)
        if run_id and (ends_run or time.monotonic() - last > CHECKPOINT_SECONDS):
            with self.run_connection(run_id) as conn:  # no transaction is open for a PRAGMA
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            self._checkpointed[run_id] = time.monotonic()

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_all()  # wipe deletes the files
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


class ProjectSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage under `base_dir`, with the event log kept open."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = KeptOpenSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> ProjectSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
