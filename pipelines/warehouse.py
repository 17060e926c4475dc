"""The warehouse: a DuckLake whose every write is one transaction, and whose readers see whole runs.

Every write stages and validates its batch in temp tables of its own, then commits it in one
DuckLake transaction: make the table match its contract, quarantine, replace the window (or a
part of it: a site's), commit. A failure rolls it all back. Each commit is a snapshot, tagged
with the run that made it. Writers of one table take turns only for the transaction, so on a
PostgreSQL catalog the staging of different parts runs at once.

Readers read the *published* snapshot: a run that ends records its last snapshot as published
(`megawatt.published`), and readers attach the lake read-only at that snapshot. They never see a
half-finished run, tables of two runs are never mixed, and a reader keeps its snapshot for as
long as it stays connected. `as_of` reads what was published at an earlier time or by an earlier
run. Snapshots that nobody published (a session opened by hand that wrote) stop the next publish.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipelines.batch import Part, Scan, Window
from pipelines.contracts import Column, Contract, parse_contract, utc_day
from pipelines.errors import ContractViolation, DeclarationError, MegawattError, RuleError
from pipelines.lake import LAKE, S3, Lake, extension_path
from pipelines.settings import CONTRACTS_DIR
from pipelines.sqltext import literal, quote
from pipelines.validation import Validation, fetch_dicts, validate

QUARANTINE_TABLE = "quarantine"
PREVIEW_ROWS = 5
AUTHOR = "megawatt"  # the author of every snapshot the pipeline commits
PUBLISH = "publish"  # the commit message of a publish record
META = "megawatt"  # the lake's schema of the pipeline's own bookkeeping
ATTACH_SCRIPT = "attach.sql"  # for the duckdb CLI and BI tools: the published snapshot
LEGACY_FILE = "pipeline.duckdb"  # the warehouse before DuckLake
EMBEDDED_CATALOG = "sqlite:catalog.sqlite"  # in the warehouse folder, like the data
EMBEDDED_DATA = "data/"
CONFLICT_RETRIES = 3
LOCKS = "megawatt_locks"  # a PostgreSQL catalog's database, attached for its advisory locks
# snapshots that change no data: the lake's first, and upkeep's (DuckLake commits compaction
# alone, without an author)
UNCHANGED_DATA = {"schemas_created", "flushed_inlined", "merge_adjacent", "rewrite_delete"}
# type changes that keep every stored value (DuckLake allows only widening promotions)
WIDENINGS = {("INTEGER", "BIGINT"), ("INTEGER", "DOUBLE"), ("BIGINT", "DOUBLE")}

log = logging.getLogger(__name__)


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
    snapshot: int | None = None  # the snapshot the write committed
    retries: int = 0  # commits that conflicted with another writer's and were redone
    # days of the window the data had no row for: their stored rows were kept (no data is not
    # zero rows), with `answered_only`
    days_without_data: tuple[date, ...] = ()
    # the days whose content changed, so were replaced (only those are written); and the days
    # compared and found equal to what is stored, which were not rewritten
    days_changed: tuple[DayChange, ...] = ()
    days_unchanged: tuple[date, ...] = ()
    answered: bool = True  # False when the data had rows for none of its days (nothing ran)

    @property
    def wrote(self) -> bool:
        """Whether the write committed: not when the data answered none of its days, nor when
        nothing it would write differs from what is stored (no snapshot then)."""
        return self.snapshot is not None

    def changes(self, most: int | None = None) -> str:
        """What changed, as text: "restated 2024-04-22 (3 rows), 2024-04-23 (0 rows, emptied);
        new 2024-04-24 (3 rows); 4 day(s) unchanged"; with `most`, that many days of each kind
        and a count of the others. "" when no day was compared (a whole-table write)."""

        def listed(changes: list[DayChange]) -> str:
            shown = [str(c) for c in changes]
            if most is not None and len(shown) > most:
                shown = shown[:most] + [f"and {len(shown) - most} more"]
            return ", ".join(shown)

        restated = [c for c in self.days_changed if c.stored_rows]
        new = [c for c in self.days_changed if not c.stored_rows]
        parts = [f"restated {listed(restated)}"] if restated else []
        parts += [f"new {listed(new)}"] if new else []
        if self.days_unchanged:
            parts.append(f"{len(self.days_unchanged)} day(s) unchanged")
        return "; ".join(parts)


@dataclass(frozen=True)
class DayChange:
    """A day a write replaced because its rows differ from the stored ones."""

    day: date
    rows: int  # rows written for the day (appended, for an observation)
    stored_rows: int  # rows stored for it before (0: a new day)

    def __str__(self) -> str:
        return f"{self.day} ({self.rows:,} rows{', emptied' if self.rows == 0 else ''})"


@dataclass(frozen=True)
class Published:
    snapshot: int
    run_id: str
    published_at: datetime


class Warehouse:
    """The pipeline's warehouse: by default a SQLite catalog and Parquet files in `directory`."""

    def __init__(
        self,
        directory: Path | str,
        contracts_dir: Path = CONTRACTS_DIR,
        memory_limit: str | None = None,
        lake: Lake | None = None,
    ):
        self.directory = Path(directory).resolve()
        self.contracts_dir = contracts_dir
        self.memory_limit = memory_limit  # the writer's; None: DuckDB's default (80% of RAM)
        self.lake = lake or lake_in(self.directory)

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def transaction(
        self, message: str, run_id: str | None, table: str | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """One DuckLake transaction, committed as a snapshot tagged with `run_id`, or rolled back.

        An embedded (SQLite) catalog takes one committing writer at a time, so local writers
        queue on a file lock; a PostgreSQL catalog takes writers of different tables in parallel
        (optimistic), and writers of the same `table` one at a time (see `_table_lock`)."""
        self._refuse_legacy()
        with self._write_lock(), self._table_lock(table), self._cursor() as con:
            with self._in_transaction(con, message, run_id):
                yield con

    @staticmethod
    @contextmanager
    def _in_transaction(con, message: str, run_id: str | None) -> Iterator:
        """A transaction of `con`, committed as a snapshot tagged with `run_id`, or rolled back."""
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
            con.execute(
                f"CALL {LAKE}.set_commit_message(?, ?, extra_info => ?)",
                [AUTHOR, message, json.dumps({"run_id": run_id})],
            )
            con.execute("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):  # a failed COMMIT has ended it already
                con.execute("ROLLBACK")
            raise

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the process's writer connection: its temp tables are its own."""
        con = _writer_connection(self.lake, self.memory_limit).cursor()
        try:
            con.execute(f"USE {LAKE}")
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        if not self.lake.embedded:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".write.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for any other writer, in any process
            yield

    @contextmanager
    def run_lock(self, run_id: str, waiting: Callable[[str], None]) -> Iterator[None]:
        """One run at a time on an embedded lake, whichever process started it: a run that
        starts while another runs waits for it (`waiting` is told whose run), so that what a run
        publishes is its own writes, never another's half-done. A PostgreSQL catalog does not
        serialise runs (its writers of different tables commit in parallel)."""
        if not self.lake.embedded:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".run.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                waiting(lock.read().strip() or "another run")
                fcntl.flock(lock, fcntl.LOCK_EX)
            lock.seek(0)
            lock.truncate()
            lock.write(f"run {run_id} (pid {os.getpid()})")
            lock.flush()
            yield

    @contextmanager
    def _table_lock(self, table: str | None) -> Iterator[None]:
        """On a PostgreSQL catalog, one writer of `table` at a time: a PostgreSQL advisory lock,
        held by a transaction of its own for the write's duration and released when it ends or
        its process dies. Without it, two writers of one table conflict on every commit while
        one of them writes on, and the other gives up after its retries."""
        if self.lake.embedded or table is None:
            yield
            return
        con = _writer_connection(self.lake, self.memory_limit).cursor()
        try:
            dsn = literal(self.lake.catalog.removeprefix("postgres:"))
            con.execute(f"ATTACH IF NOT EXISTS {dsn} AS {LOCKS} (TYPE postgres)")
            con.execute("BEGIN TRANSACTION")
            lock = f"SELECT pg_advisory_xact_lock(hashtext({literal(f'megawatt:{table}')}))"
            con.execute(f"CALL postgres_execute({literal(LOCKS)}, {literal(lock)})")
            yield
        finally:
            with suppress(duckdb.Error):
                con.execute("ROLLBACK")
            con.close()

    def write(
        self,
        contract: Contract,
        data: pl.DataFrame | str | Scan,
        *,
        origin: str,
        window: Window | None = None,
        partition_column: str | None = None,
        params: dict | None = None,
        run_id: str | None = None,
        rebuild: bool = False,
        rollup: Rollup | None = None,
        answered_only: bool = False,
        append: bool = False,
        part: Part | None = None,
    ) -> WriteReport:
        """Replace `window` of `contract.table` (the whole table when None) with `data`.

        `data` is a Polars frame, a SQL query (run with `params`) or a Scan of files (read where
        they lie); `origin` names where it came from in error messages. Raises ContractViolation,
        leaving every table as it was, when a blocking rule fails; rows breaking row-level rules
        are quarantined instead when the contract allows it. With `rollup`, the valid rows are not
        stored themselves: their rollup is, validated against its own contract. `rebuild` lets a
        change of the table's shape that cannot keep its history drop what is stored: only for a
        write of every partition. A write outside a run (`run_id` None) is published at once.

        With `answered_only` (a source's data), a day of the window without rows in `data` keeps
        its stored rows: an empty answer is no data, not a day of zero rows. When no day has
        rows, nothing is written or committed. With `append` (an observation), the rows are
        added to the window's, which stay, as do its quarantined rows.

        Only the days whose content changed are replaced: each day of the validated rows is
        compared with the day as stored (on every contract column, see `_digests`), and so are
        its quarantined rows; a day equal to what is stored is not rewritten (no new file), and
        a write that changes nothing commits nothing (no snapshot). The report lists the days
        changed, with their rows, and the days found unchanged.

        With `part` (site_id=...), the write is of that part of the window only: its rows must
        all be of the part (rule `within_partition`), and only the part's stored and quarantined
        rows are replaced. The rows are staged and validated before the write takes its turn on
        the table (a PostgreSQL catalog's writers of different parts stage at once); a commit
        that conflicts with another writer's is redone from the staged rows, at most
        CONFLICT_RETRIES times, and says so.
        """
        if append and window is None:
            raise ValueError("an append is to a window of days")
        if part is not None and window is None:
            raise ValueError("a part is of a window of days")
        self._refuse_legacy()
        # an embedded lake takes one writer at a time, from staging to commit
        with self._write_lock(), self._cursor() as con:
            try:
                staged = self._stage(con, contract, data, origin, window, partition_column,
                                     params, rollup, answered_only, part)  # fmt: skip
            except _NoData as nothing:
                return WriteReport(contract.table, 0, 0, Validation([]), [],
                                   days_without_data=nothing.days, answered=False)  # fmt: skip
            for attempt in range(CONFLICT_RETRIES + 1):
                try:
                    report = self._commit(con, staged, run_id, rebuild, append)
                    break
                except _Unchanged as unchanged:  # rolled back: nothing to commit, no snapshot
                    return unchanged.report
                except duckdb.TransactionException as e:
                    if "conflict" not in str(e).lower() or attempt == CONFLICT_RETRIES:
                        raise
                    log.warning(
                        f"{staged.stored.table}{f' ({part})' if part else ''}: the commit "
                        f"conflicted with another writer's (try {attempt + 1} of "
                        f"{CONFLICT_RETRIES + 1}); committing the staged rows again"
                    )
                    time.sleep(0.2 * 2**attempt)
        report = dataclasses.replace(report, retries=attempt)
        if run_id is None:
            self.publish(None)
        return report

    def _stage(self, con, contract, data, origin, window, partition_column, params, rollup,
               answered_only, part) -> _Staged:  # fmt: skip
        """Stage and validate the batch in `con`'s temp tables, reading the lake but writing
        nothing to it: `quarantined_batch` (its rows a blocking row rule keeps out) and `new`
        (the rows to store, or their rollup)."""
        stored = contract if rollup is None else rollup.contract
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
        unanswered: list[date] = []
        if answered_only and window is not None:
            answered = _answered_days(con, contract, "incoming", partition_column, window)
            unanswered = [d for d in window.days() if d not in answered]
            if not answered:
                raise _NoData(tuple(unanswered))
            # the span of the days answered; a day without data inside it is kept below
            window = Window(min(answered), max(answered) + timedelta(days=1))
        validation = self._validate(con, contract, "incoming", origin, window, partition_column,
                                    part)  # fmt: skip
        # days without data inside the span answered: their rows and quarantine stay
        kept = [d for d in unanswered if window.start <= d < window.end]
        validation.rows_quarantined = self._stage_quarantine(
            con, contract, window, partition_column, validation.kept_out, part
        )
        stored_column, rollup_validation = partition_column, None
        if rollup is not None:
            stored_column = rollup.partition_column
            con.execute(f"CREATE TEMP TABLE rolled AS {rollup.query}")
            rollup_validation = self._validate(
                con, stored, "rolled", str(rollup.path), window, stored_column, part
            )
        return _Staged(contract.table, stored, window, stored_column, part, tuple(unanswered),
                       tuple(kept), validation, rollup_validation)  # fmt: skip

    def _commit(self, con, staged: _Staged, run_id, rebuild, append) -> WriteReport:
        """Replace the stored rows (and quarantined ones) by the staged, in one transaction on
        the table's turn; raises _Unchanged, rolled back, when nothing differs."""
        stored, window = staged.stored, staged.window
        with (
            self._table_lock(stored.table),
            self._in_transaction(
                con, f"write {stored.table}" + (f" {staged.part}" if staged.part else ""), run_id
            ) as con,
        ):
            # a whole-table write replaces every row: any change of shape keeps nothing less
            reshaped = self._ensure_table(con, stored, rebuild or window is None)
            requarantined = self._quarantine(con, staged, append)
            replaced = self._replace(con, stored, window, staged.stored_column, staged.kept,
                                     append, staged.part)  # fmt: skip
            report = WriteReport(
                stored.table, replaced.written, replaced.total, staged.validation,
                replaced.preview, staged.rollup_validation,
                days_without_data=staged.unanswered, days_changed=replaced.changed,
                days_unchanged=replaced.unchanged,
            )  # fmt: skip
            if not (replaced.table_changed or requarantined or reshaped):
                raise _Unchanged(report)  # rolls the transaction back: no snapshot
        return dataclasses.replace(report, snapshot=self.latest_snapshot(run_id))

    @staticmethod
    def _validate(con, contract: Contract, relation: str, origin: str, window, column, part):
        what = contract.table + (f" ({part})" if part else "")  # a part: nothing of it written
        try:
            validation = validate(con, contract, relation, origin, window, column, part)
        except RuleError as e:
            raise RuleError(f"{what}: {e} (in {contract.path}); nothing was written") from None

        blocking = validation.blocking(quarantined=contract.quarantine)
        if blocking:
            # the row-level failures too: they may be why a table-level rule failed
            others = [f for f in validation.failures if f not in blocking]
            raise ContractViolation(
                f"{what}: {len(blocking)} blocking rule(s) of "
                f"{contract.path} failed, nothing was written:\n- "
                + "\n- ".join(str(f) for f in blocking)
                + ("\nalso failed:\n- " + "\n- ".join(map(str, others)) if others else ""),
                validation,
                contract,
            )
        return validation

    @staticmethod
    def _replace(con, contract: Contract, window: Window | None, partition_column: str | None,
                 kept: tuple[date, ...] = (), append: bool = False,
                 part: Part | None = None) -> _Replaced:  # fmt: skip
        """Replace the days of the window (the table, when None) whose rows differ from those
        of `new`, but for the `kept` days; with `append`, add `new`'s rows to their days. With
        `part`, of the part's rows only (`new` holds no other)."""
        table = quote(contract.table)
        columns = ", ".join(quote(c) for c in contract.column_names)
        changed: list[DayChange] = []
        unchanged: list[date] = []
        if window is None:
            ours = _digests(con, contract, "new")
            theirs = _digests(con, contract, table)
            table_changed = ours.get(None, (0, 0)) != theirs.get(None, (0, 0))
            if table_changed:
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM new")
            written = ours.get(None, (0, 0))[0] if table_changed else 0
        else:
            # a plain range on the stored column, so that DuckDB prunes files by their min/max
            column = next(c for c in contract.columns if c.name == partition_column)
            where = f"{quote(column.name)} >= $start AND {quote(column.name)} < $end"
            of_part = {}
            if part is not None:
                where += f" AND {quote(part.column)} = $part"
                of_part = {"part": part.value}
            day = utc_day(quote(column.name))
            ours = _digests(con, contract, "new", day)
            theirs = _digests(con, contract, table, day, where,
                              _window_bounds(column, window) | of_part)  # fmt: skip
            for d in window.days():
                if d in kept:
                    continue
                rows, stored_rows = ours.get(d, (0, 0))[0], theirs.get(d, (0, 0))[0]
                if append and rows:
                    changed.append(DayChange(d, rows, stored_rows))
                elif not append and ours.get(d, (0, 0)) != theirs.get(d, (0, 0)):
                    changed.append(DayChange(d, rows, stored_rows))
                elif not append and d in theirs:
                    unchanged.append(d)
            days = [c.day for c in changed]
            if not append:
                for run in window.without([d for d in window.days() if d not in days]):
                    con.execute(f"DELETE FROM {table} WHERE {where}",
                                _window_bounds(column, run) | of_part)  # fmt: skip
            # all of `new` when every day it has changed (a day emptied has none of its rows)
            only = "" if set(days) >= set(ours) else f" WHERE {day} IN (SELECT unnest($days))"
            if days:
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM new{only}",
                            {"days": days} if only else {})  # fmt: skip
            written = sum(c.rows for c in changed)
            table_changed = bool(changed)
        latest_first = ", ".join(f"{quote(k)} DESC" for k in contract.key) or "1 DESC"
        preview = fetch_dicts(
            con, f"SELECT {columns} FROM new ORDER BY {latest_first} LIMIT {PREVIEW_ROWS}"
        )
        (total,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return _Replaced(written, total, preview, tuple(changed), tuple(unchanged), table_changed)

    def _stage_quarantine(self, con, contract: Contract, window: Window | None,
                          partition_column, kept_out: str, part: Part | None) -> int:  # fmt: skip
        """Stage temp table `quarantined_batch`: the batch's rows that `kept_out` (SQL over
        `checked`) keeps out, as the quarantine stores them; returns how many."""
        day = "NULL::DATE"
        bounds = {"table": contract.table, "part": str(part) if part else None}
        if window is not None:
            # A row is filed under its day, so re-running that partition replaces it; a day that
            # did not cast, or lies outside the run's window, files it under the window's start.
            parsed = utc_day(quote(partition_column))
            day = f"CASE WHEN {parsed} >= $start AND {parsed} < $end THEN {parsed} ELSE $start END"
            bounds |= {"start": window.start, "end": window.end}
        _drop_temp_table(con, "quarantined_batch")
        con.execute(
            f"CREATE TEMP TABLE quarantined_batch AS SELECT now() AS quarantined_at, $table AS "
            f"table_name, {day} AS day, _source AS source, _row AS row_number, "
            f"array_to_string(_failed, ', ') AS rules, _raw AS row_json, $part::VARCHAR AS part "
            f"FROM checked WHERE {kept_out if contract.quarantine else 'false'}",
            bounds,
        )
        (batch,) = con.execute("SELECT count(*) FROM quarantined_batch").fetchone()
        return batch

    def _quarantine(self, con, staged: _Staged, append: bool) -> bool:
        """Replace (or with `append`, add to) the quarantined rows of the staged batch's table,
        window (and part) by its `quarantined_batch`, but for its `kept` days (without data), and
        only on the days whose quarantined rows changed: whether the quarantine changed. A
        part's write replaces the rows of its part and those filed without one (by a write of
        the whole window, before the table was written by parts)."""
        table, window, kept, part = staged.table, staged.window, staged.kept, staged.part
        quarantine = parse_contract(self.contracts_dir / f"{QUARANTINE_TABLE}.odcs.yaml")
        reshaped = self._ensure_table(con, quarantine, rebuild=False)
        names = ", ".join(quote(c) for c in quarantine.column_names)
        if append:
            con.execute(f"INSERT INTO {QUARANTINE_TABLE} SELECT {names} FROM quarantined_batch")
            return bool(staged.validation.rows_quarantined) or reshaped
        # compared without the time of quarantine: a re-run quarantining the same rows is no
        # change
        compared = [c for c in quarantine.columns if c.name != "quarantined_at"]
        where, bounds = "table_name = $table", {"table": table}
        if part is not None:
            where += " AND (part = $part OR part IS NULL)"
            bounds["part"] = str(part)
        if window is None:
            ours = _digests(con, compared, "quarantined_batch")
            theirs = _digests(con, compared, QUARANTINE_TABLE, None, where, bounds)
            days = [None] if ours.get(None) != theirs.get(None) else []
            stale = where
        else:
            where += " AND day >= $start AND day < $end"
            bounds |= {"start": window.start, "end": window.end}
            ours = _digests(con, compared, "quarantined_batch", "day")
            theirs = _digests(con, compared, QUARANTINE_TABLE, "day", where, bounds)
            days = [d for d in {*ours, *theirs} if d not in kept and ours.get(d) != theirs.get(d)]
            stale = f"{where} AND day IN (SELECT unnest($days))"
        if days:
            params = bounds | ({"days": days} if window is not None else {})
            con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE {stale}", params)
            changed = "" if window is None else " WHERE day IN (SELECT unnest($days))"
            con.execute(
                f"INSERT INTO {QUARANTINE_TABLE} SELECT {names} FROM quarantined_batch{changed}",
                {"days": days} if window is not None else {},
            )
        return bool(days) or reshaped

    def create_view(self, name: str, query: str, description: str, run_id: str | None = None):
        """(Re)create view `name`; returns its columns (name, type) for the UI. A view whose
        query and comment are those stored is left as it is (no snapshot)."""
        view = (
            "SELECT sql, comment FROM duckdb_views() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND view_name = ?"
        )
        try:
            with self.transaction(f"view {name}", run_id) as con:
                before = con.execute(view, [name]).fetchone()
                con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {query}")
                con.execute(f"COMMENT ON VIEW {quote(name)} IS {literal(description)}")
                columns = con.execute(f"DESCRIBE {quote(name)}").fetchall()
                if con.execute(view, [name]).fetchone() == before:
                    raise _Unchanged(None)  # rolls back: the same view, no snapshot
        except _Unchanged:
            return columns
        if run_id is None:
            self.publish(None)
        return columns

    # -- the table's shape ---------------------------------------------------------------------
    def _ensure_table(self, con, contract: Contract, rebuild: bool) -> bool:
        """Make the stored table match its contract, keeping every stored row: new columns are
        added (past rows read NULL), types widened, NOT NULL dropped. A change that cannot keep
        the stored rows (a column dropped, a type narrowed, a key changed, a required column
        added) is refused unless `rebuild`: then the table is made anew, in this transaction.
        Returns whether the table was created or changed."""
        table = contract.table
        stored = {
            name: (kind, nullable == "YES")
            for name, kind, nullable in con.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_catalog = ? AND table_schema = 'main' AND table_name = ?",
                [LAKE, table],
            ).fetchall()
        }
        _ensure_meta(con)
        stored_key = con.execute(
            f"SELECT key_columns FROM {META}.table_keys WHERE table_name = ?", [table]
        ).fetchone()
        if not stored:
            self._create(con, contract)
            return True
        changes, refused = _changes(contract, stored, stored_key[0] if stored_key else None)
        if refused and not rebuild:
            raise DeclarationError(
                f"{contract.path}: table {table}: {'; '.join(refused)}. This change cannot keep "
                f"the stored rows: rebuild every partition with `megawatt run --rebuild {table}`"
            )
        if refused:
            con.execute(f"DROP TABLE {quote(table)}")
            self._create(con, contract)
            return True
        for statement in changes:
            con.execute(statement)
        if changes:
            _comment(con, contract)
        return bool(changes)

    @staticmethod
    def _create(con, contract: Contract) -> None:
        con.execute(contract.create_table_sql().replace("IF NOT EXISTS ", ""))
        _comment(con, contract)
        con.execute(f"DELETE FROM {META}.table_keys WHERE table_name = ?", [contract.table])
        con.execute(f"INSERT INTO {META}.table_keys VALUES (?, ?)", [contract.table, contract.key])

    # -- publishing ----------------------------------------------------------------------------
    def latest_snapshot(self, run_id: str | None = None) -> int | None:
        """The lake's latest snapshot; with `run_id`, the last one that run committed."""
        with self._connect_latest() as con:
            if run_id is None:
                return con.execute(f"SELECT id FROM {LAKE}.current_snapshot()").fetchone()[0]
            return con.execute(
                f"SELECT max(snapshot_id) FROM {LAKE}.snapshots() "
                "WHERE json_extract_string(commit_extra_info, '$.run_id') = ?",
                [run_id],
            ).fetchone()[0]

    def publish(self, run_id: str | None) -> Published | None:
        """Record the last snapshot of run `run_id` (None: the latest) as the one readers read.
        Refuses when a snapshot since the last publish was not committed by the pipeline."""
        snapshot = self.latest_snapshot(run_id)
        if snapshot is None:
            return None  # the run committed nothing
        previous = self.published()
        if previous is not None and previous.snapshot >= snapshot:
            return previous  # already published (by the run's sensor or its command)
        with self._connect_latest() as con:
            foreign = con.execute(
                f"SELECT snapshot_id, snapshot_time, changes FROM {LAKE}.snapshots() "
                "WHERE snapshot_id > ? AND snapshot_id <= ? AND author IS DISTINCT FROM ? "
                "ORDER BY snapshot_id",
                [previous.snapshot if previous else -1, snapshot, AUTHOR],
            ).fetchall()
        # neither the lake's first snapshot (its main schema) nor upkeep changes any data
        foreign = [f for f in foreign if not set(f[2]) <= UNCHANGED_DATA]
        if foreign:
            listed = "; ".join(f"snapshot {s} at {t:%Y-%m-%d %H:%M:%S} {c}" for s, t, c in foreign)
            raise MegawattError(
                f"not published: the warehouse has changes not made by the pipeline ({listed}). "
                "Readers still read the last published snapshot"
                + (f" ({previous.snapshot})" if previous else "")
                + ". Undo them (restore each table from that snapshot: DELETE FROM t; INSERT INTO "
                "t SELECT * FROM t AT (VERSION => N)) and run again"
            )
        with self.transaction(PUBLISH, run_id) as con:
            _ensure_meta(con)
            con.execute(
                f"INSERT INTO {META}.published VALUES (?, ?, now())", [snapshot, run_id or ""]
            )
        published = self.published()
        self._write_attach_script(published)
        return published

    def published(self, as_of: str | None = None) -> Published | None:
        """The snapshot readers read (see `_published`), as the pipeline's writer sees it."""
        with self._connect_latest() as con:
            return _published(con, as_of)

    def _write_attach_script(self, published: Published) -> None:
        """`attach.sql`: the statements that open the published snapshot read-only, for the
        duckdb CLI (`duckdb -init warehouse/attach.sql`) and BI tools. Replaced atomically."""
        extensions = self.lake.extensions()
        loads = "\n".join(f"LOAD {literal(extension_path(name))};" for name in extensions)
        text = (
            f"-- The megawatt warehouse as published by run {published.run_id or '(none)'} at "
            f"{published.published_at:%Y-%m-%d %H:%M:%S} UTC: snapshot {published.snapshot}, "
            "read-only.\n"
            f"{loads}\nSET TimeZone = 'UTC';\n"
            f"{self.lake.attach_sql(read_only=True, snapshot=published.snapshot)};\n"
            f"USE {LAKE};\n"
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / ATTACH_SCRIPT
        tmp = path.with_suffix(".sql.tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # -- reading -------------------------------------------------------------------------------
    def reader(self, as_of: str | None = None) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the published snapshot (or the one published `as_of`)."""
        self._refuse_legacy()
        never = MegawattError(
            f"the warehouse in {self.directory} has no published run yet: run `megawatt run`"
        )
        if self.lake.embedded and not self.lake.catalog_file.exists():
            raise never
        con = self.lake.connect(read_only=True)  # the latest snapshot, to find the published
        try:
            published = _published(con, as_of)
            if published is None:
                if as_of:
                    raise MegawattError(f"nothing was published by run or at time {as_of!r}")
                raise never
            # the audit trail as it stands now (the snapshot read predates its own publish)
            con.execute(
                "CREATE TEMP TABLE published_runs AS SELECT run_id, snapshot_id, published_at "
                f"FROM {LAKE}.{META}.published ORDER BY published_at"
            )
            con.execute(f"USE memory; DETACH {LAKE}")
            con.execute(self.lake.attach_sql(read_only=True, snapshot=published.snapshot))
            con.execute(f"USE {LAKE}")
        except BaseException:
            con.close()
            raise
        return con

    def latest(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the latest snapshot, published or not (for the pipeline's
        own reads during a run, such as its plots)."""
        return self.lake.connect(read_only=True)

    @contextmanager
    def _connect_latest(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._refuse_legacy()
        con = _writer_connection(self.lake, self.memory_limit).cursor()
        try:
            con.execute(f"USE {LAKE}")
            yield con
        finally:
            con.close()

    def _refuse_legacy(self) -> None:
        legacy = self.directory / LEGACY_FILE
        if legacy.exists():
            raise MegawattError(
                f"{legacy} is a warehouse of an earlier version (one DuckDB file); the warehouse "
                "is now a DuckLake. Run `megawatt migrate` to move its tables into the lake"
            )

    # -- upkeep --------------------------------------------------------------------------------
    def migrate_legacy(self) -> list[str]:
        """Move the tables of an old `pipeline.duckdb` into the lake (one transaction), publish
        them, and rename the old files `*.migrated`. Returns the tables moved."""
        legacy = self.directory / LEGACY_FILE
        if not legacy.exists():
            raise MegawattError(f"there is no {legacy} to migrate")
        source = legacy.rename(legacy.with_suffix(".duckdb.migrating"))  # lets the lake open
        try:
            names = self._copy_legacy(source)
        except BaseException:
            source.rename(legacy)
            raise
        source.rename(legacy.with_suffix(".duckdb.migrated"))
        published = self.directory / "megawatt.duckdb"
        if published.exists():
            published.rename(published.with_suffix(".duckdb.migrated"))
        self.publish(None)
        return names

    def _copy_legacy(self, source: Path) -> list[str]:
        """Copy every table and view of the old file `source` into the lake, in one transaction;
        a table with a contract gets the contract's shape."""
        with self._connect_latest() as con:  # attached for the writer's every cursor
            con.execute(f"ATTACH {literal(str(source))} AS legacy (READ_ONLY)")
        try:
            with self.transaction("migrate from pipeline.duckdb", None) as con:
                names = [n for (n,) in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'legacy'"
                ).fetchall()]  # fmt: skip
                views = con.execute(
                    "SELECT sql FROM duckdb_views() WHERE database_name = 'legacy' AND NOT internal"
                ).fetchall()
                for name in names:
                    contract_path = self.contracts_dir / f"{name}.odcs.yaml"
                    if contract_path.exists():
                        self._ensure_table(con, parse_contract(contract_path), rebuild=True)
                        con.execute(f"INSERT INTO {quote(name)} BY NAME "
                                    f"SELECT * FROM legacy.main.{quote(name)}")  # fmt: skip
                    else:
                        con.execute(f"CREATE TABLE {quote(name)} AS "
                                    f"SELECT * FROM legacy.main.{quote(name)}")  # fmt: skip
                for (sql,) in views:
                    con.execute(sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        finally:
            with self._connect_latest() as con:
                con.execute("DETACH DATABASE IF EXISTS legacy")
        return names

    def upkeep(self, retention: timedelta) -> dict:
        """Compact (rows inlined in the catalog to files, small files merged, files with deleted
        rows rewritten), expire snapshots older than `retention` (never the published one),
        delete the files no snapshot needs. Returns what it did, with file counts before and
        after.

        The compacted snapshot holds the published data in fewer files: it is published in the
        same run's name when nothing but compaction came after, so that the published snapshot's
        small files can go too."""
        before = self.data_files()
        cutoff = datetime.now(UTC) - retention
        with self._write_lock(), self._connect_latest() as con:
            # each its own commit: DuckLake commits compaction alone
            con.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
            merged = con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')").fetchall()
            con.execute(f"CALL ducklake_rewrite_data_files('{LAKE}')")
        published = self._republish_compacted()
        with self._write_lock(), self._connect_latest() as con:
            expired = [
                s
                for (s,) in con.execute(
                    f"SELECT snapshot_id FROM {LAKE}.snapshots() WHERE snapshot_time < ? "
                    "AND snapshot_id <> ? AND snapshot_id < (SELECT max(snapshot_id) FROM "
                    f"{LAKE}.snapshots())",
                    [cutoff, published.snapshot if published else -1],
                ).fetchall()
            ]
            if expired:
                con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', versions => ?)", [expired])
            removed = con.execute(
                f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)"
            ).fetchall()
            # files no snapshot knows: left by killed writers; a day old, so never a file that a
            # writer in another process has written and not yet committed
            orphans = con.execute(
                f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => ?)",
                [datetime.now(UTC) - timedelta(days=1)],
            ).fetchall()
        after = self.data_files()
        return {
            "files_before": before[0],
            "bytes_before": before[1],
            "files_after": after[0],
            "bytes_after": after[1],
            "tables_merged": len(merged),
            "snapshots_expired": len(expired),
            "files_deleted": len(removed) + len(orphans),
        }

    def _republish_compacted(self) -> Published | None:
        """Publish the latest snapshot for the published run when every snapshot since the
        published one only compacted files (the data is the same)."""
        published = self.published()
        if published is None:
            return None
        with self._connect_latest() as con:
            since = con.execute(
                f"SELECT changes, commit_message FROM {LAKE}.snapshots() WHERE snapshot_id > ?",
                [published.snapshot],
            ).fetchall()
            latest = con.execute(f"SELECT id FROM {LAKE}.current_snapshot()").fetchone()[0]
        # the publish records that follow a published snapshot change no table readers read
        if not since or not all(set(c) <= UNCHANGED_DATA or m == PUBLISH for c, m in since):
            return published
        with self.transaction(PUBLISH, published.run_id or None) as con:
            con.execute(
                f"INSERT INTO {META}.published VALUES (?, ?, now())", [latest, published.run_id]
            )
        republished = self.published()
        self._write_attach_script(republished)
        return republished

    def data_files(self) -> tuple[int, int]:
        """(count, bytes) of the Parquet files the lake's current snapshot and its retained
        history reference, and of any others under its data path."""
        with self._connect_latest() as con:
            (files, size) = con.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM read_blob(? || '**/*.parquet')",
                [self.lake.data_path],
            ).fetchone()
        return files, size


def lake_in(directory: Path, catalog: str | None = None, data_path: str | None = None,
            s3: S3 | None = None) -> Lake:  # fmt: skip
    """The lake of the warehouse in `directory`: by default a SQLite catalog and a data folder
    there; a relative catalog file or data folder lies in `directory` too."""
    catalog = catalog or EMBEDDED_CATALOG
    if catalog.startswith("sqlite:"):
        catalog = f"sqlite:{directory / catalog.removeprefix('sqlite:')}"
    data_path = data_path or EMBEDDED_DATA
    if "://" not in data_path:
        data_path = str(directory / data_path)
    return Lake(catalog, data_path.rstrip("/") + "/", s3)


def warehouse_of(directory: Path | str, catalog: str | None = None, data_path: str | None = None,
                 memory_limit: str | None = None, s3: S3 | None = None) -> Warehouse:  # fmt: skip
    """The warehouse in `directory` with the catalog and data path that settings declare."""
    directory = Path(directory).resolve()
    return Warehouse(directory, memory_limit=memory_limit,
                     lake=lake_in(directory, catalog, data_path, s3))  # fmt: skip


def warehouse_for(settings, directory: Path | str) -> Warehouse:
    """The warehouse in `directory` as `settings` (assets/settings.yaml, with its profile
    chosen) declare it."""
    lake = settings.profile.warehouse
    s3 = S3(**lake.s3.model_dump()) if lake.s3 else None
    return warehouse_of(directory, lake.catalog, lake.data_path, settings.warehouse.memory_limit,
                        s3)  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------------
_WRITERS: dict[tuple, duckdb.DuckDBPyConnection] = {}


def _writer_connection(lake: Lake, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """The process's writable connection to `lake`, opened once: loading the extensions costs a
    quarter of a second per DuckDB instance. Each transaction takes a cursor of its own."""
    key = (lake, memory_limit)
    if key not in _WRITERS:
        _WRITERS[key] = lake.connect(read_only=False, memory_limit=memory_limit)
    return _WRITERS[key]


def _ensure_meta(con) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {META}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.published (snapshot_id BIGINT NOT NULL, "
        "run_id VARCHAR NOT NULL, published_at TIMESTAMPTZ NOT NULL)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META}.table_keys (table_name VARCHAR NOT NULL, "
        "key_columns VARCHAR[] NOT NULL)"
    )


def _published(con, as_of: str | None) -> Published | None:
    """The snapshot readers read: the latest published, or the one published by run `as_of`
    (an id or its first 8 characters), or the last one published by time `as_of` (ISO 8601,
    UTC; a day alone means its end)."""
    if not _has_meta(con):
        return None
    where, params = "", []
    if as_of:
        moment = _as_time(as_of)
        if moment is None:
            where, params = "WHERE starts_with(run_id, ?) AND run_id <> ''", [as_of]
        else:
            where, params = "WHERE published_at <= ?", [moment]
    row = con.execute(
        f"SELECT snapshot_id, run_id, published_at FROM {LAKE}.{META}.published {where} "
        "ORDER BY published_at DESC, snapshot_id DESC LIMIT 1",
        params,
    ).fetchone()
    return Published(*row) if row else None


def _has_meta(con) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
            "AND table_name = 'published'",
            [LAKE, META],
        ).fetchone()[0]
    )


def _changes(contract: Contract, stored: dict, stored_key: list | None):
    """(ALTER statements that keep every stored row, changes that cannot) from `stored`
    ({column: (type, nullable)}) to the contract."""
    table = quote(contract.table)
    changes, refused = [], []
    for column in contract.columns:
        name, wanted = quote(column.name), column.described_type
        if column.name not in stored:
            if column.required:
                refused.append(f"adds required column {column.name} (stored rows have none)")
            else:
                changes.append(f"ALTER TABLE {table} ADD COLUMN {name} {column.type}")
            continue
        kind, nullable = stored[column.name]
        if kind != wanted:
            if (kind, wanted) in WIDENINGS:
                changes.append(f"ALTER TABLE {table} ALTER {name} SET DATA TYPE {column.type}")
            else:
                refused.append(f"changes the type of {column.name} from {kind} to {wanted}")
        if column.required and nullable:
            refused.append(f"makes {column.name} required (stored rows may have none)")
        elif not column.required and not nullable:
            changes.append(f"ALTER TABLE {table} ALTER {name} DROP NOT NULL")
    for name in stored:
        if name not in contract.column_names:
            refused.append(f"drops column {name}")
    if stored_key is not None and list(stored_key) != contract.key:
        refused.append(f"changes the key from ({', '.join(stored_key)}) to "
                       f"({', '.join(contract.key)})")  # fmt: skip
    return changes, refused


def _comment(con, contract: Contract) -> None:
    for statement in contract.comment_sql():
        con.execute(statement)


class _NoData(Exception):
    """The data of a source's write had no row for any day of its window."""

    def __init__(self, days: tuple[date, ...]):
        self.days = days


class _Unchanged(Exception):
    """Nothing a write would commit differs from what is stored: its transaction is rolled back
    and `report` returned."""

    def __init__(self, report: WriteReport | None):
        self.report = report


@dataclass(frozen=True)
class _Staged:
    """A batch staged and validated in a writer's cursor, to commit."""

    table: str  # the rows' table (its quarantined rows are filed under it)
    stored: Contract  # the table stored: the rows', or their rollup's
    window: Window | None  # the days to replace (a source's: those it answered)
    stored_column: str | None  # the stored table's partition column
    part: Part | None
    unanswered: tuple[date, ...]
    kept: tuple[date, ...]  # days without data inside the window: their rows stay
    validation: Validation
    rollup_validation: Validation | None


@dataclass(frozen=True)
class _Replaced:
    written: int
    total: int
    preview: list[dict]
    changed: tuple[DayChange, ...]
    unchanged: tuple[date, ...]
    table_changed: bool


def _digests(con, columns: Contract | list[Column], relation: str, day: str | None = None,
             where: str = "true", params: dict | None = None) -> dict:  # fmt: skip
    """{day (None without `day`): (rows, digest)} of `relation`'s rows where `where`, grouped by
    the SQL `day`: the digest is the sum of a 64-bit hash of every row's `columns` (each cast to
    its contract type, so that a stored and a staged row hash alike; NULL hashes as a value), so
    two days with the same rows in any order have equal digests, and a day with any value
    changed, a row added, removed or duplicated has another, but for a chance of about 2^-64.

    Measured against exact set differences (EXCEPT ALL both ways) on a miner_telemetry_daily
    table of 100,000 machines, a window of 8 days (800,000 rows) against 3 M stored: 0.16 s
    against 2.0 s, and no hash table of whole rows in memory."""
    if isinstance(columns, Contract):
        columns = columns.columns
    hashed = ", ".join(f"CAST({quote(c.name)} AS {c.type})" for c in columns)
    rows = con.execute(
        f"SELECT {day or 'NULL'} AS day, count(*), sum(hash({hashed})::HUGEINT) "
        f"FROM {relation} WHERE {where} GROUP BY ALL",
        params or {},
    ).fetchall()
    return {d: (n, digest) for d, n, digest in rows}


def _drop_temp_table(con, name: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS temp.{quote(name)}")


def _answered_days(con, contract: Contract, relation: str, column: str, window: Window) -> set:
    """The days of `window` that `relation` has rows for, by its `column` as the contract types
    it (a value that does not cast counts for no day: its row fails validation anyway)."""
    typed = next(c for c in contract.columns if c.name == column).type
    day = utc_day(f"TRY_CAST({quote(column)} AS {typed})")
    return {
        d
        for (d,) in con.execute(
            f"SELECT DISTINCT {day} FROM {relation} WHERE {day} >= $start AND {day} < $end",
            {"start": window.start, "end": window.end},
        ).fetchall()
    }


def _window_bounds(column: Column, window: Window) -> dict:
    """The window's bounds typed as `column` is stored (DATE, or TIMESTAMPTZ at UTC midnight)."""
    if column.type == "DATE":
        return {"start": window.start, "end": window.end}
    return {
        "start": datetime(window.start.year, window.start.month, window.start.day, tzinfo=UTC),
        "end": datetime(window.end.year, window.end.month, window.end.day, tzinfo=UTC),
    }


def _as_time(text: str) -> datetime | None:
    """`text` as a UTC time when it is one (a date, or a date and time), else None."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        if len(text) == 10:  # a day: as it stood at the end of that UTC day
            moment += timedelta(days=1) - timedelta(microseconds=1)
        moment = moment.replace(tzinfo=UTC)
    return moment
