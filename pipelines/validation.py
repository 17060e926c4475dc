"""Validate a staged batch against its contract, inside the writer's transaction.

The batch is typed as it will be stored (a value that does not cast is a failure with its row);
Great Expectations then runs the contract's rule plan (pipelines/rule_plan.py) on the rows that
cast: the row rules (nulls, ranges, sets, finite numbers, row conditions, the partition window),
and the rules on the batch as a whole (the key is unique, rows per day, SQL over the batch) on
the rows kept. Only for the rules GX fails does DuckDB find the rows, with the same predicates
and queries, tag them with the rules they break, and describe the first. Where the contract
allows it, rows that break row-level rules are quarantined and the others go on; otherwise any
failure of a blocking rule stops the write. Every result names the source file or URL, the row,
the column, the value and the rule."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import duckdb

from pipelines.batch import Part, Window
from pipelines.contracts import COLUMNS_RULE, TYPES_RULE, Column, Contract, Rule
from pipelines.errors import shown
from pipelines.expectations import failing_rules
from pipelines.rule_plan import Check, rule_plan
from pipelines.sqltext import literal, quote

LINEAGE_COLUMNS = ("_source", "_row")  # where each incoming row came from, for error messages
INTEGER_TYPES = {"BIGINT", "INTEGER"}
FLOAT_TYPES = {"DOUBLE", "FLOAT"}
INTEGER_TEXT = "[+-]?[0-9]+"  # what text an integer column takes: no fraction, hex or spaces
NUMBER_TEXT = "[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?"  # decimal, finite
SAMPLE_ROWS = 5
# the batch the plan runs on: the staged rows whose values are of their types
CAST_ROWS = (
    f"SELECT * FROM checked WHERE NOT coalesce(list_contains(_failed, '{TYPES_RULE}'), false)"
)


@dataclass(frozen=True)
class RuleResult:
    """How one rule fared on a batch: `rows` failing (or days, or duplicated keys)."""

    rule: Rule
    rows: int = 0
    example: str = ""
    sample: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.rows == 0

    def __str__(self) -> str:
        return (
            f"rule {self.rule.name!r} ({self.rule.description}) failed for {self.rows} row(s); "
            f"{self.example}"
        )


@dataclass
class Validation:
    results: list[RuleResult]
    rows_in: int = 0
    rows_quarantined: int = 0
    kept_out: str = "false"  # SQL over `checked`: the rows a blocking row-level rule keeps out

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def blocking(self, quarantined: bool) -> list[RuleResult]:
        """Failures that stop the write (row-level ones don't, when their rows are quarantined)."""
        return [
            r for r in self.failures if r.rule.blocking and not (quarantined and r.rule.row_level)
        ]


def combine(validations: list[Validation]) -> Validation:
    """The validations of consecutive batches of one table as one: counts add up, the first
    failure found is the example."""
    results = []
    for of_rule in zip(*(v.results for v in validations), strict=True):
        failed = [r for r in of_rule if not r.passed]
        if not failed:
            results.append(of_rule[0])
            continue
        rows = sum(r.rows for r in failed)
        results.append(RuleResult(failed[0].rule, rows, failed[0].example, failed[0].sample))
    return Validation(
        results,
        rows_in=sum(v.rows_in for v in validations),
        rows_quarantined=sum(v.rows_quarantined for v in validations),
        kept_out=validations[-1].kept_out,
    )


def fetch_dicts(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _at(row: dict, contract: Contract, skip: str | None = None) -> str:
    """'file F row R (key=...)' for one row."""
    keys = ", ".join(f"{k}={row[k]}" for k in contract.key if row.get(k) is not None and k != skip)
    return f"{row['_source']} row {row['_row']}" + (f" ({keys})" if keys else "")


def _mentioned(rule: Rule, contract: Contract) -> list[str]:
    return [
        c
        for c in contract.column_names
        if rule.condition and re.search(rf"\b{c}\b", rule.condition) and c not in contract.key
    ]


def _check_columns(con, contract: Contract, incoming: str, origin: str) -> RuleResult | None:
    present = [r[0] for r in con.execute(f"DESCRIBE {incoming}").fetchall()]
    missing = [c for c in contract.column_names if c not in present]
    unexpected = [c for c in present if c not in contract.column_names + list(LINEAGE_COLUMNS)]
    if not (missing or unexpected):
        return None
    parts = [f"missing column(s) {missing}" if missing else "",
             f"unexpected column(s) {unexpected}" if unexpected else ""]  # fmt: skip
    detail = "; ".join(p for p in parts if p)
    return RuleResult(contract.rule(COLUMNS_RULE), 1, f"{origin}: {detail}")


def validate(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    incoming: str,
    origin: str,
    window: Window | None,
    partition_column: str | None,
    part: Part | None = None,
) -> Validation:
    """Check relation `incoming` against `contract` (its rows of `window` and `part`).

    Leaves temp table `checked` (the typed rows, with `_failed`: the row-level rules each breaks)
    and view `new` (the rows that break none) for the writer.
    """
    columns_result = _check_columns(con, contract, incoming, origin)
    if columns_result:
        rest = [RuleResult(r) for r in contract.rules if r.name != COLUMNS_RULE]
        return Validation([columns_result, *rest])

    described = f"SELECT column_name, column_type FROM (DESCRIBE {incoming})"
    present = dict(con.execute(described).fetchall())
    source = "_source" if "_source" in present else literal(origin)
    row = "_row" if "_row" in present else "row_number() OVER ()"
    casts = {c.name: typed_as(f"raw.{quote(c.name)}", present[c.name], c) for c in contract.columns}
    type_failed = (
        " OR ".join(
            f"(raw.{quote(n)} IS NOT NULL AND {cast} IS NULL)"
            for n, cast in casts.items()
            if cast != f"raw.{quote(n)}"
        )
        or "false"
    )
    # The typed rows; the row as it arrived is kept only where a value did not cast. When no
    # value can fail its cast they are a view: a day of telemetry is then read where it lies, by
    # each rule, and never copied.
    typed = ", ".join(f"{cast} AS {quote(name)}" for name, cast in casts.items())
    as_arrived = ", ".join(f"{quote(c)} := raw.{quote(c)}" for c in contract.column_names)
    _drop_temp(con, "checked")  # an earlier batch's, in this transaction
    con.execute(
        f"CREATE TEMP {'TABLE' if type_failed != 'false' else 'VIEW'} checked AS "
        f"SELECT {typed}, CAST({source} AS VARCHAR) AS _source, CAST({row} AS BIGINT) AS _row, "
        f"CASE WHEN {type_failed} THEN ['{TYPES_RULE}'] END AS _failed, "
        f"CASE WHEN {type_failed} THEN CAST(to_json(struct_pack({as_arrived})) AS VARCHAR) END "
        f"AS _raw FROM {incoming} AS raw"
    )
    # Great Expectations runs the plan on the rows that cast (a value that does not cast fails
    # its type only). For the row rules it failed, DuckDB tags the rows with the same predicates.
    plan = rule_plan(contract, window, partition_column, part)
    row_rules = [c.rule for c in plan if c.row_level]
    failed = failing_rules(con, CAST_ROWS, plan)
    tagged = [r for r in row_rules if r.name in failed]
    if tagged:
        tags = ", ".join(f"CASE WHEN ({r.condition}) IS FALSE THEN '{r.name}' END" for r in tagged)
        con.execute(
            "CREATE TEMP TABLE tagged AS SELECT * REPLACE (coalesce(_failed, "
            f"nullif(list_filter([{tags}], x -> x IS NOT NULL), [])) AS _failed) "
            "FROM checked AS new"
        )
        _drop_temp(con, "checked")
        con.execute("ALTER TABLE tagged RENAME TO checked")
        as_stored = ", ".join(f"{quote(c)} := {quote(c)}" for c in contract.column_names)
        con.execute(
            f"UPDATE checked SET _raw = CAST(to_json(struct_pack({as_stored})) AS VARCHAR) "
            "WHERE _raw IS NULL AND _failed IS NOT NULL"
        )
    blocking = [f"'{r.name}'" for r in [contract.rule(TYPES_RULE), *row_rules] if r.blocking]
    kept_out = f"coalesce(list_has_any(_failed, [{', '.join(blocking)}]), false)"
    # `new`: the rows the write may keep; a row breaking only warnings stays
    con.execute(f"CREATE OR REPLACE TEMP VIEW new AS SELECT * FROM checked WHERE NOT {kept_out}")

    counts = dict(
        con.execute(
            "SELECT rule, count(*) FROM (SELECT unnest(_failed) AS rule FROM checked "
            "WHERE _failed IS NOT NULL) GROUP BY rule"
        ).fetchall()
    )
    results = [RuleResult(contract.rule(COLUMNS_RULE))]
    results.append(_type_result(con, contract, present, counts.get(TYPES_RULE, 0)))
    for rule in row_rules:
        results.append(_row_result(con, contract, rule, counts.get(rule.name, 0)))
    # a rule on the batch as a whole names the files (or the origin) the batch came from
    files = [
        f for (f,) in con.execute("SELECT DISTINCT _source FROM checked ORDER BY 1").fetchall()
    ]
    batch = f"in the batch from {', '.join(files[:3]) + (' ...' if len(files) > 3 else '')}"
    batch = batch if files else f"in the batch from {origin} (no rows)"
    for check in plan:
        if not check.row_level:
            passed = check.rule.name not in failed
            results.append(RuleResult(check.rule) if passed else _batch_result(con, check, batch))
    (rows_in,) = con.execute("SELECT count(*) FROM checked").fetchone()
    return Validation(results, rows_in, kept_out=kept_out)


def _drop_temp(con, name: str) -> None:
    """Drop temporary table or view `name`, if there is one (DROP must name which it is)."""
    for kind, catalog, column in (("VIEW", "duckdb_views", "view_name"),
                                  ("TABLE", "duckdb_tables", "table_name")):  # fmt: skip
        found = con.execute(
            f"SELECT count(*) FROM {catalog}() WHERE temporary AND {column} = ?", [name]
        ).fetchone()[0]
        if found:
            con.execute(f"DROP {kind} {quote(name)}")


def typed_as(value: str, present: str, column: Column) -> str:
    """SQL for `value` (of DuckDB type `present`) as `column` stores it, NULL where it is none:
    a check, never a coercion. TRY_CAST alone rounds '251.5' and 251.5 into an integer and reads
    '0x7a', '1_000' and ' 7 ' as numbers. A value already of the column's type (Parquet, a SQL
    asset) is taken as it is, and cannot fail."""
    if present == column.described_type:
        return value
    cast = f"TRY_CAST({value} AS {column.type})"
    if column.type in INTEGER_TYPES and present == "VARCHAR":
        return f"CASE WHEN regexp_full_match({value}, '{INTEGER_TEXT}') THEN {cast} END"
    if column.type in INTEGER_TYPES and (present in FLOAT_TYPES or present.startswith("DECIMAL")):
        return f"CASE WHEN {value} = trunc({value}) THEN {cast} END"
    if column.type == "DOUBLE" and present == "VARCHAR":
        return f"CASE WHEN regexp_full_match({value}, '{NUMBER_TEXT}') THEN {cast} END"
    return cast


def _type_result(con, contract: Contract, present: dict, failing: int) -> RuleResult:
    rule = contract.rule(TYPES_RULE)
    if not failing:
        return RuleResult(rule)
    first_rows = fetch_dicts(
        con,
        f"SELECT _source, _row, _raw FROM checked WHERE list_contains(_failed, '{TYPES_RULE}') "
        f"ORDER BY _source, _row LIMIT {SAMPLE_ROWS}",
    )
    sample = [
        {**json.loads(r["_raw"]), "_source": r["_source"], "_row": r["_row"]} for r in first_rows
    ]
    first = sample[0]
    bad = next(  # the first column of the first row whose value is not of its type
        c
        for c in contract.columns
        if first[c.name] is not None
        and con.execute(
            f"SELECT {typed_as('raw.value', present[c.name], c)} IS NULL "
            f"FROM (SELECT CAST(? AS {present[c.name]}) AS value) AS raw",
            [first[c.name]],
        ).fetchone()[0]
    )
    example = (f"first at {_at(first, contract, bad.name)}, column {bad.name!r}, "
               f"value {shown(first[bad.name])} is not {bad.type}")  # fmt: skip
    return RuleResult(rule, failing, example, sample)


def _row_result(con, contract: Contract, rule: Rule, failing: int) -> RuleResult:
    if not failing:
        return RuleResult(rule)
    sample = fetch_dicts(
        con,
        f"SELECT * EXCLUDE (_failed, _raw) FROM checked "
        f"WHERE list_contains(_failed, '{rule.name}') ORDER BY _source, _row LIMIT {SAMPLE_ROWS}",
    )
    first = sample[0]
    if rule.column:
        detail = f", column {rule.column!r}, value {shown(first[rule.column])}"
    else:
        values = ", ".join(f"{c}={shown(first[c])}" for c in _mentioned(rule, contract))
        detail = f": {values}" if values else ""
    example = f"first at {_at(first, contract, rule.column)}{detail}"
    return RuleResult(rule, failing, example, sample)


def _batch_result(con, check: Check, batch: str) -> RuleResult:
    """The failure of a rule on the batch as a whole, from the query GX counted."""
    failing = check.failing.replace("{batch}", f"({CAST_ROWS})")
    (count,) = con.execute(f"SELECT count(*) FROM ({failing})").fetchone()
    cursor = con.execute(failing)
    names = [d[0] for d in cursor.description]
    sample = [dict(zip(names, row, strict=True)) for row in cursor.fetchmany(SAMPLE_ROWS)]
    first, rule = sample[0], check.rule
    if rule.unique_key:
        values = ", ".join(f"{k}={first[k]}" for k in rule.unique_key)
        example = f"first: ({values}) in {first['_source']} rows {first['rows'][:SAMPLE_ROWS]}"
    elif rule.row_count_between:
        example = f"first: {first['day']} has {first['rows']} row(s) {batch}"
    else:
        example = f"first: {', '.join(f'{k}={v}' for k, v in first.items())}, {batch}"
    return RuleResult(rule, count, example, sample)
