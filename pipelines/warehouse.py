"""The DuckDB warehouse: one writer, atomic table writes, and a published copy for readers.

DuckDB lets one process hold a database file for writing, and no other process may open it
meanwhile, not even read-only. So the pipeline writes `pipeline.duckdb`, which only it opens, and
after every committed write publishes a copy, `megawatt.duckdb`, by atomic rename. Readers open the
published file read-only: they never wait on a run, and a reader that has it open keeps a consistent
snapshot (the rename gives new readers a new file; the old one lives on until they close it).

Every write is one transaction: create the table from its contract if needed, stage and validate
the batch, delete the partition's window, insert. A failure anywhere rolls it all back.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines.contracts import Contract, parse_contract, utc_day
from pipelines.errors import ContractViolation, DeclarationError, MegawattError
from pipelines.settings import CONTRACTS_DIR
from pipelines.validation import Validation, Window, fetch_dicts, quote, validate

PIPELINE_FILE = "pipeline.duckdb"
PUBLISHED_FILE = "megawatt.duckdb"


QUARANTINE_TABLE = "quarantine"
PREVIEW_ROWS = 5


class Scan(str):
    """A query that reads files where they lie (Parquet, CSV): validated by each rule reading it
    again, instead of copied into the warehouse first. Other queries are run once, into a table."""


@dataclass(frozen=True)
class Rollup:
    """What is stored of a source too big to store row by row: `query` over its valid rows
    (`new`), validated against `contract`."""

    contract: Contract
    query: str
    partition_column: str
    path: Path
    days_per_write: int = 1  # days validated and written in one transaction


@dataclass(frozen=True)
class WriteReport:
    table: str  # the table written (the rollup's, for a rolled-up source)
    rows_written: int
    rows_in_table: int
    validation: Validation
    preview: list[dict]  # the last rows written, for the UI
    rollup_validation: Validation | None = None


class Warehouse:
    """The pipeline's warehouse in `directory`."""

    def __init__(
        self,
        directory: Path | str,
        contracts_dir: Path = CONTRACTS_DIR,
        memory_limit: str | None = None,
    ):
        self.directory = Path(directory)
        self.contracts_dir = contracts_dir
        self.memory_limit = memory_limit  # the writer's; None: DuckDB's default (80% of RAM)
        self.pipeline_path = self.directory / PIPELINE_FILE
        self.published_path = self.directory / PUBLISHED_FILE

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one read-write connection; serialised across processes; publishes on success."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".write.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for any other writer, in any process
            config = {"memory_limit": self.memory_limit} if self.memory_limit else {}
            con = duckdb.connect(str(self.pipeline_path), config=config)
            try:
                con.execute("SET TimeZone = 'UTC'")
                yield con
                con.execute("CHECKPOINT")
            finally:
                con.close()
            self._publish()

    def _publish(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".publish-", suffix=".duckdb")
        os.close(fd)
        try:
            shutil.copyfile(self.pipeline_path, tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; readers may be other users
            os.replace(tmp, self.published_path)  # atomic: readers see the old or the new file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write(
        self,
        contract: Contract,
        data: pl.DataFrame | str | Scan,
        *,
        origin: str,
        window: Window | None = None,
        partition_column: str | None = None,
        params: dict | None = None,
        rebuildable: bool = True,
        rollup: Rollup | None = None,
    ) -> WriteReport:
        """Replace `window` of `contract.table` (the whole table when None) with `data`.

        `data` is a Polars frame, a SQL query (run with `params`) or a Scan of files (read where
        they lie); `origin` names where it came from in error messages. Raises ContractViolation,
        leaving every table as it was, when a blocking rule fails; rows breaking row-level rules
        are quarantined instead when the contract allows it. With `rollup`, the valid rows are not
        stored themselves: their rollup is, validated against its own contract.
        """
        with self.writer() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if isinstance(data, pl.DataFrame):
                    con.register("incoming", data.to_arrow())
                elif isinstance(data, Scan):
                    con.execute(f"CREATE TEMP VIEW incoming AS {data}")
                else:
                    try:
                        con.execute(f"CREATE TEMP TABLE incoming AS {data}", params or {})
                    except duckdb.CatalogException as e:
                        if "Table with name" not in str(e):
                            raise
                        # an input table was never built (a run of some tables, or a new one)
                        reason = str(e).splitlines()[0].removeprefix("Catalog Error: ")
                        raise MegawattError(
                            f"{contract.table}: its query cannot run: {reason} (build its "
                            "inputs first: `megawatt run` builds every table)"
                        ) from None
                stored, stored_column = contract, partition_column
                if rollup is None:
                    self._ensure_table(con, contract, rebuildable)
                validation = self._validate(con, contract, "incoming", origin, window,
                                            partition_column)  # fmt: skip
                validation.rows_quarantined = self._quarantine(
                    con, contract, window, partition_column, validation.kept_out
                )
                rollup_validation = None
                if rollup is not None:
                    stored, stored_column = rollup.contract, rollup.partition_column
                    self._ensure_table(con, stored, rebuildable=True)
                    con.execute(f"CREATE TEMP TABLE rolled AS {rollup.query}")
                    rollup_validation = self._validate(
                        con, stored, "rolled", str(rollup.path), window, stored_column
                    )
                written, total, preview = self._replace(con, stored, window, stored_column)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return WriteReport(stored.table, written, total, validation, preview, rollup_validation)

    @staticmethod
    def _validate(con, contract: Contract, relation: str, origin: str, window, column):
        validation = validate(con, contract, relation, origin, window, column)
        blocking = validation.blocking(quarantined=contract.quarantine)
        if blocking:
            # the row-level failures too: they may be why a table-level rule failed
            others = [f for f in validation.failures if f not in blocking]
            raise ContractViolation(
                f"{contract.table}: {len(blocking)} blocking rule(s) of "
                f"{contract.path} failed, nothing was written:\n- "
                + "\n- ".join(str(f) for f in blocking)
                + ("\nalso failed:\n- " + "\n- ".join(map(str, others)) if others else ""),
                validation,
                contract,
            )
        return validation

    @staticmethod
    def _replace(con, contract: Contract, window: Window | None, partition_column: str | None):
        """Replace the window's rows of the table by those of `new`: (written, total, preview)."""
        table = quote(contract.table)
        days = (
            ""
            if window is None
            else (
                f" WHERE {utc_day(quote(partition_column))} "
                "BETWEEN $start AND $end - INTERVAL 1 DAY"
            )
        )
        bounds = {} if window is None else {"start": window.start, "end": window.end}
        con.execute(f"DELETE FROM {table}{days}", bounds)
        columns = ", ".join(quote(c) for c in contract.column_names)
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM new")
        (written,) = con.execute("SELECT count(*) FROM new").fetchone()
        latest_first = ", ".join(f"{quote(k)} DESC" for k in contract.key) or "1 DESC"
        preview = fetch_dicts(
            con, f"SELECT {columns} FROM new ORDER BY {latest_first} LIMIT {PREVIEW_ROWS}"
        )
        (total,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return written, total, preview

    def _quarantine(
        self, con, contract: Contract, window: Window | None, partition_column, kept_out: str
    ) -> int:
        """Replace the quarantined rows of this table and window by this batch's; count them."""
        quarantine = parse_contract(self.contracts_dir / f"{QUARANTINE_TABLE}.odcs.yaml")
        self._ensure_table(con, quarantine, rebuildable=False)
        day = "NULL"
        if window is not None:
            # A row is filed under its day, so re-running that partition replaces it; a day that
            # did not cast, or lies outside the run's window, files it under the window's start.
            parsed = utc_day(quote(partition_column))
            day = (
                f"CASE WHEN {parsed} >= DATE '{window.start}' AND {parsed} < DATE '{window.end}' "
                f"THEN {parsed} ELSE DATE '{window.start}' END"
            )
        where = "table_name = $table" + (
            "" if window is None else " AND day >= $start AND day < $end"
        )
        bounds = {"table": contract.table}
        if window is not None:
            bounds |= {"start": window.start, "end": window.end}
        con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE {where}", bounds)
        if not contract.quarantine:
            return 0
        con.execute(
            f"INSERT INTO {QUARANTINE_TABLE} SELECT now(), $table, {day}, _source, _row, "
            f"array_to_string(_failed, ', '), _raw FROM checked WHERE {kept_out}",
            {"table": contract.table},
        )
        (n,) = con.execute(
            f"SELECT count(*) FROM {QUARANTINE_TABLE} WHERE {where}", bounds
        ).fetchone()
        return n

    def create_view(self, name: str, query: str, description: str) -> list[tuple]:
        """(Re)create view `name`; returns its columns (name, type) for the UI."""
        with self.writer() as con:
            con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {query}")
            text = description.replace("'", "''")
            con.execute(f"COMMENT ON VIEW {quote(name)} IS '{text}'")
            return con.execute(f"DESCRIBE {quote(name)}").fetchall()

    def _ensure_table(self, con, contract: Contract, rebuildable: bool) -> None:
        existing = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [contract.table],
        ).fetchall()
        wanted = [(c.name, c.described_type) for c in contract.columns]
        if existing and existing != wanted:
            if not rebuildable:
                raise DeclarationError(
                    f"{contract.table}: the warehouse table's columns {existing} differ from "
                    f"{contract.path}; migrate or drop the table, then re-run its partitions"
                )
            con.execute(f'DROP TABLE "{contract.table}"')  # derived: rebuilt from its inputs
        con.execute(contract.create_table_sql())
        for statement in contract.comment_sql():
            con.execute(statement)

    # -- reading -------------------------------------------------------------------------------
    def reader(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the published warehouse; never blocked by a run."""
        if not self.published_path.exists():
            raise MegawattError(
                f"{self.published_path} does not exist yet: run `megawatt run` to build it"
            )
        con = duckdb.connect(str(self.published_path), read_only=True)
        con.execute("SET TimeZone = 'UTC'")
        return con
