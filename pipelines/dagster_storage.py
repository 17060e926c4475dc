"""Dagster's own SQLite storage for this project's instance (dagster_home/dagster.yaml), with its
event log kept open.

Dagster's SQLite event log opens a database, commits with a full sync and closes it (which
checkpoints the WAL) for every event it stores. A run of the sample period stores ~3,200 events
(a materialisation and its planned event per asset and day, two per check), and the main job spent
half its time recording what it did. This keeps one connection per database file, with
`synchronous=NORMAL` (in WAL mode: no sync per commit; a power cut may lose the last events, never
the database). Same files, schema and layout as Dagster's default, so the UI, the daemon and older
history read it as before.

The UI follows a running run by watching its database file for changes, which a kept-open WAL
database seldom makes: every event stored touches the file's mtime, which the watcher reports as
a change (the UI then reads the new events through SQLite, WAL included).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.pool import StaticPool

OPEN_SHARDS = 8  # databases kept open at once (the index and the latest runs')


def _no_sync_per_commit(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage that keeps a connection per database file instead of one per event."""

    def __init__(self, base_dir: str, inst_data=None):
        # before Dagster's __init__, which may already connect (to build a missing index)
        self._engines: OrderedDict[str, tuple[db.engine.Engine, tuple | None]] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:  # one user of the connection at a time, as in Dagster's
            path = self.path_for_shard(shard)
            engine, identity = self._engines.get(shard, (None, None))
            if engine is not None and identity != _identity(path):
                # the file was deleted or replaced (a wipe, another process): reopen it, so that
                # this process sees what Dagster's own storage would
                engine.dispose()
                engine = None
            if engine is None:
                engine = self._open(shard)
                self._engines[shard] = (engine, _identity(path))
                while len(self._engines) > OPEN_SHARDS:  # a long-lived UI reads many runs
                    self._engines.popitem(last=False)[1][0].dispose()
            self._engines.move_to_end(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _open(self, shard: str) -> db.engine.Engine:
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,  # the one connection, guarded by the lock
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        db.event.listen(engine, "connect", _no_sync_per_commit)
        if shard not in self._initialized_dbs:
            try:
                self._initdb(engine)
            except BaseException:
                engine.dispose()
                raise
            self._initialized_dbs.add(shard)
        return engine

    def store_event(self, event) -> None:
        super().store_event(event)
        if event.run_id:  # tell the UI's watcher of the run's database that it changed
            os.utime(self.path_for_shard(event.run_id))

    def _close_all(self) -> None:
        with self._db_lock:
            for engine, _ in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_all()  # wipe deletes the files
        super().wipe()

    def dispose(self) -> None:
        super().dispose()  # stops the watcher first, which would reopen connections
        self._close_all()


class ProjectSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage under `base_dir`, with the event log kept open."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = KeptOpenSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> ProjectSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
