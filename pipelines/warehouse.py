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
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipelines.contracts import Contract
from pipelines.errors import ContractViolation, DeclarationError, MegawattError
from pipelines.validation import Failure, Window, check_rules, stage_typed

PIPELINE_FILE = "pipeline.duckdb"
PUBLISHED_FILE = "megawatt.duckdb"

# information_schema spells some types differently from the DDL
_TYPE_NAMES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


@dataclass(frozen=True)
class WriteReport:
    table: str
    rows_written: int
    rows_in_table: int
    rules_checked: int
    warnings: list[Failure] = field(default_factory=list)


class Warehouse:
    """The pipeline's warehouse in `directory`."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.pipeline_path = self.directory / PIPELINE_FILE
        self.published_path = self.directory / PUBLISHED_FILE

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one read-write connection; serialised across processes; publishes on success."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".write.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for any other writer, in any process
            con = duckdb.connect(str(self.pipeline_path))
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
        data: pl.DataFrame | str,
        *,
        origin: str,
        window: Window | None = None,
        partition_column: str | None = None,
        params: dict | None = None,
        rebuildable: bool = True,
    ) -> WriteReport:
        """Replace `window` of `contract.table` (the whole table when None) with `data`.

        `data` is a Polars frame or a SQL query (run with `params`); `origin` names where it came
        from in error messages. Raises ContractViolation, leaving the table as it was, when a
        blocking rule fails.
        """
        table = f'"{contract.table}"'
        with self.writer() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._ensure_table(con, contract, rebuildable)
                if isinstance(data, pl.DataFrame):
                    con.register("incoming", data.to_arrow())
                else:
                    con.execute(f"CREATE TEMP TABLE incoming AS {data}", params or {})
                failures = stage_typed(con, contract, "incoming", origin)
                if not failures:
                    failures = check_rules(con, contract, window, partition_column)
                blocking = [f for f in failures if f.blocking]
                if blocking:
                    raise ContractViolation(
                        f"{contract.table}: {len(blocking)} blocking rule(s) of "
                        f"{contract.path} failed, nothing was written:\n- "
                        + "\n- ".join(str(f) for f in blocking)
                    )
                if window is None:
                    con.execute(f"DELETE FROM {table}")
                else:
                    con.execute(
                        f'DELETE FROM {table} WHERE CAST("{partition_column}" AS DATE) '
                        f"BETWEEN $start AND $end - INTERVAL 1 DAY",
                        {"start": window.start, "end": window.end},
                    )
                columns = ", ".join(f'"{c}"' for c in contract.column_names)
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM new")
                (written,) = con.execute("SELECT count(*) FROM new").fetchone()
                (total,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return WriteReport(
            contract.table,
            written,
            total,
            len(contract.rules) + 2,
            [f for f in failures if not f.blocking],
        )

    def _ensure_table(self, con, contract: Contract, rebuildable: bool) -> None:
        existing = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [contract.table],
        ).fetchall()
        wanted = [(c.name, _TYPE_NAMES.get(c.type, c.type)) for c in contract.columns]
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
