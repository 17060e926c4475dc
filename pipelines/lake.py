"""Connections to the warehouse's DuckLake: a catalog database plus Parquet data files.

Embedded (the default), the catalog is a SQLite file and the data a folder, both under the
warehouse folder: no server. The same code takes a PostgreSQL catalog (`postgres:dbname=...`)
and an S3-compatible data path (`s3://bucket/prefix/`) by configuration.

DuckDB's extensions come from the locked `duckdb-extension-*` packages and are loaded by path:
nothing is ever downloaded at run time (autoinstall and autoload are off).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import tempfile
import time
import weakref
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb

from pipelines.errors import MegawattError
from pipelines.sqltext import literal

LAKE = "lake"  # the catalog name every connection attaches the warehouse as
# Two processes attaching a new PostgreSQL catalog at once (a cluster's first run, its steps in
# parallel) both create its tables, and the later CREATE fails: attach again, to the created one.
ATTACH_TRIES, ATTACH_BACKOFF_S = 5, 0.2
DUCKDB_VERSION = "v1.5.5"  # the extension packages' build; pyproject pins duckdb to match
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@cache
def extension_path(name: str) -> str:
    """The file of DuckDB extension `name`, from its PyPI package `duckdb-extension-<name>`."""
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MegawattError(f"the DuckDB extension package {package} is not installed (uv sync)")
    folder = Path(spec.submodule_search_locations[0])
    return str(folder / "extensions" / DUCKDB_VERSION / f"{name}.duckdb_extension")


@dataclass(frozen=True)
class S3:
    """An S3-compatible data path's endpoint; the credentials are read from environment
    variables named here, never written in a declaration."""

    endpoint: str | None = None  # host:port; None: AWS
    region: str = "us-east-1"
    url_style: str = "path"
    use_ssl: bool = True
    key_id_variable: str = "AWS_ACCESS_KEY_ID"
    secret_variable: str = "AWS_SECRET_ACCESS_KEY"


@dataclass(frozen=True)
class Lake:
    """Where the warehouse lives: `catalog` (sqlite:<file> or postgres:<libpq string>) and
    `data_path` (a folder or s3:// prefix)."""

    catalog: str
    data_path: str
    s3: S3 | None = None

    @property
    def embedded(self) -> bool:
        return self.catalog.startswith("sqlite:")

    @property
    def catalog_file(self) -> Path | None:
        return Path(self.catalog.removeprefix("sqlite:")) if self.embedded else None

    def extensions(self) -> list[str]:
        names = ["ducklake", "sqlite_scanner" if self.embedded else "postgres_scanner"]
        return names + (["httpfs"] if self.data_path.startswith("s3://") else [])

    def attach_sql(self, *, read_only: bool, snapshot: int | None = None) -> str:
        """The ATTACH statement for this lake (ATTACH takes no parameters: quoted literals)."""
        options = [f"DATA_PATH {literal(self.data_path)}"]
        if read_only:
            options.append("READ_ONLY")
        if snapshot is not None:
            options.append(f"SNAPSHOT_VERSION {int(snapshot)}")
        return f"ATTACH {literal('ducklake:' + self.catalog)} AS {LAKE} ({', '.join(options)})"

    def connect(
        self,
        *,
        read_only: bool,
        snapshot: int | None = None,
        memory_limit: str | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the lake attached as `lake` and in use, in UTC."""
        # A spill folder of its own: an in-memory DuckDB spills to `.tmp` in the working
        # directory, which two processes there share, and one deletes the other's files.
        spill = tempfile.mkdtemp(prefix="megawatt-duckdb-")
        config = dict(NO_DOWNLOADS, temp_directory=spill)
        if memory_limit:
            config["memory_limit"] = memory_limit
        con = duckdb.connect(config=config)
        weakref.finalize(con, shutil.rmtree, spill, True)
        try:
            for name in self.extensions():
                con.execute(f"LOAD {literal(extension_path(name))}")
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
            if self.s3 is not None:
                self._create_secret(con)
            if self.embedded and not read_only:
                self._prepare_embedded()
            self._attach(con, read_only, snapshot)
            con.execute(f"USE {LAKE}")
        except BaseException:
            con.close()
            raise
        return con

    def _attach(self, con: duckdb.DuckDBPyConnection, read_only: bool, snapshot: int | None):
        for attempt in range(1, ATTACH_TRIES + 1):
            try:
                con.execute(self.attach_sql(read_only=read_only, snapshot=snapshot))
                return
            except duckdb.Error as e:
                racing = not self.embedded and "Failed to initialize DuckLake" in str(e)
                if not racing or attempt == ATTACH_TRIES:
                    raise
                time.sleep(ATTACH_BACKOFF_S * attempt)

    def _prepare_embedded(self) -> None:
        """The data folder, and the SQLite catalog in WAL mode: readers then never wait on a
        committing writer (in SQLite's default mode a reader attaching during a commit fails
        with 'database is locked')."""
        if not self.data_path.startswith("s3://"):
            Path(self.data_path).mkdir(parents=True, exist_ok=True)
        path = self.catalog_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # kept by the file from then on

    def _create_secret(self, con: duckdb.DuckDBPyConnection) -> None:
        s3 = self.s3
        missing = [v for v in (s3.key_id_variable, s3.secret_variable) if v not in os.environ]
        if missing:
            raise MegawattError(
                f"the warehouse's data path {self.data_path} needs the environment variable(s) "
                f"{', '.join(missing)}"
            )
        options = {
            "KEY_ID": os.environ[s3.key_id_variable],
            "SECRET": os.environ[s3.secret_variable],
            "REGION": s3.region,
            "URL_STYLE": s3.url_style,
            "USE_SSL": "true" if s3.use_ssl else "false",
        }
        if s3.endpoint:
            options["ENDPOINT"] = s3.endpoint
        listed = ", ".join(f"{k} {literal(v)}" for k, v in options.items())
        con.execute(f"CREATE OR REPLACE SECRET megawatt_s3 (TYPE s3, {listed})")
