"""Validate a staged batch against its contract, inside the writer's transaction.

The batch is typed as it will be stored (a value that does not cast is a failure with its row);
Great Expectations then judges the row-level rules (nulls, ranges, sets, row conditions, the
partition window) on the rows that cast, and the table-level rules (the key is unique, rows per
day, SQL over the batch) on the rows kept (pipelines/expectations.py). Only for the rules GX
fails does DuckDB find the rows, tag them with the rules they break, and describe the first.
Where the contract allows it, rows that break row-level rules are quarantined and the others go
on; otherwise any failure of a blocking rule stops the write. Every result names the source file
or URL, the row, the column, the value and the rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import duckdb

from pipelines.batch import Window
from pipelines.contracts import COLUMNS_RULE, TYPES_RULE, Column, Contract, Rule, utc_day
from pipelines.errors import DeclarationError, cut, shown
from pipelines.expectations import failing_rules
from pipelines.sqltext import literal, quote

LINEAGE_COLUMNS = ("_source", "_row")  # where each incoming row came from, for error messages
INTEGER_TYPES = {"BIGINT", "INTEGER"}
FLOAT_TYPES = {"DOUBLE", "FLOAT"}
INTEGER_TEXT = "[+-]?[0-9]+"  # what text an integer column takes: no fraction, hex or spaces
NUMBER_TEXT = "[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?"  # decimal, finite
SAMPLE_ROWS = 5


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


def _row_rules(contract: Contract, window: Window | None, partition_column: str | None):
    rules = [r for r in contract.rules if r.condition]
    if window is not None and partition_column is not None:
        day = utc_day(quote(partition_column))
        condition = f"{day} >= DATE '{window.start}' AND {day} < DATE '{window.end}'"
        rules.append(
            Rule("within_partition", f"{partition_column} within [{window.start}, {window.end})",
                 "error", partition_column, condition)
        )  # fmt: skip
    return rules


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
) -> Validation:
    """Check relation `incoming` against `contract`.

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
    row_rules = _row_rules(contract, window, partition_column)
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
    # Great Expectations judges the rows that cast (a value that does not cast fails its type
    # only); DuckDB then tags the rows of the rules it failed, and only those. The rules on the
    # batch as a whole are judged in the same pass, on the rows the batch keeps: those that pass
    # every blocking row rule (a value that does not cast always blocks its row).
    keeps = " AND ".join(f"({r.condition}) IS NOT FALSE" for r in row_rules if r.blocking)
    batch_rules = [r for r in contract.rules if r.unique_key or r.row_count_between or r.query]
    table_rules = [
        _on_kept(_as_query(r, window, partition_column) if r.row_count_between else r, keeps)
        for r in batch_rules
    ]
    failed = failing_rules(
        con, "SELECT * FROM checked WHERE _failed IS NULL", [*row_rules, *table_rules]
    )
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
    for rule in batch_rules:
        if rule.name not in failed:
            results.append(RuleResult(rule))
        elif rule.unique_key:
            results.append(_unique_key(con, rule))
        elif rule.row_count_between:
            results.append(_row_count(con, rule, window, partition_column, batch))
        else:
            results.append(_query_rule(con, rule, batch))
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


def _on_kept(rule: Rule, keeps: str) -> Rule:
    """A rule on the batch as a whole, as a query over the rows that satisfy `keeps`."""
    query = rule.query
    if rule.unique_key:
        key = ", ".join(quote(k) for k in rule.unique_key)
        query = f"SELECT {key} FROM {{object}} GROUP BY ALL HAVING count(*) > 1"
    if keeps:  # `new` is the row, as in the row rules
        query = query.replace("{object}", f"(SELECT * FROM {{object}} AS new WHERE {keeps})")
    return Rule(rule.name, rule.description, rule.severity, query=query)


def _as_query(rule: Rule, window: Window | None, partition_column: str | None) -> Rule:
    """A rows-per-day rule as a query over the batch, for Great Expectations."""
    low, high = rule.row_count_between
    if window is None or partition_column is None:
        query = (
            f"SELECT count(*) AS rows FROM {{object}} HAVING count(*) NOT BETWEEN {low} AND {high}"
        )
    else:
        column = quote(partition_column)
        query = (
            f"SELECT CAST(day AS DATE) AS day FROM range(DATE '{window.start}', "
            f"DATE '{window.end}', INTERVAL 1 DAY) AS days(day) LEFT JOIN (SELECT "
            f"{utc_day(column)} AS of_day, count({column}) AS n FROM {{object}} GROUP BY 1) "
            f"ON of_day = day WHERE coalesce(n, 0) NOT BETWEEN {low} AND {high}"
        )
    return Rule(rule.name, rule.description, rule.severity, query=query)


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


def _unique_key(con, rule: Rule) -> RuleResult:
    key = ", ".join(quote(k) for k in rule.unique_key)
    (duplicated,) = con.execute(
        f"SELECT count(*) FROM (SELECT {key} FROM new GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()
    if not duplicated:
        return RuleResult(rule)
    dupes = fetch_dicts(  # the rows of the first few duplicated keys
        con,
        f"WITH keys AS (SELECT {key} FROM new GROUP BY ALL HAVING count(*) > 1) "
        f"SELECT {key}, count(*) AS copies, list(_row ORDER BY _row) AS rows, "
        f"any_value(_source) AS _source FROM new SEMI JOIN keys USING ({key}) "
        f"GROUP BY ALL ORDER BY min(_row) LIMIT {SAMPLE_ROWS}",
    )
    first = dupes[0]
    values = ", ".join(f"{k}={first[k]}" for k in rule.unique_key)
    example = f"first: ({values}) in {first['_source']} rows {first['rows'][:SAMPLE_ROWS]}"
    return RuleResult(rule, duplicated, example, dupes)


def _query_rule(con, rule: Rule, batch: str) -> RuleResult:
    offending = fetch_dicts(con, rule.query.replace("{object}", "new"))
    if not offending:
        return RuleResult(rule)
    first = ", ".join(f"{k}={v}" for k, v in offending[0].items())
    return RuleResult(rule, len(offending), f"first: {first}, {batch}", offending[:SAMPLE_ROWS])


def _row_count(
    con, rule: Rule, window: Window | None, partition_column: str | None, batch: str
) -> RuleResult:
    low, high = rule.row_count_between
    if window is None or partition_column is None:
        (n,) = con.execute("SELECT count(*) FROM new").fetchone()
        bad = [] if low <= n <= high else [{"day": "the table", "rows": n}]
    else:
        bad = fetch_dicts(
            con,
            f"SELECT CAST(day AS DATE) AS day, count(new._row) AS rows "
            f"FROM range($start::DATE, $end::DATE, INTERVAL 1 DAY) AS days(day) "
            f"LEFT JOIN new ON {utc_day('new.' + quote(partition_column))} = day "
            f"GROUP BY day HAVING count(new._row) NOT BETWEEN {low} AND {high} ORDER BY day",
            {"start": window.start, "end": window.end},
        )
    if not bad:
        return RuleResult(rule)
    example = f"first: {bad[0]['day']} has {bad[0]['rows']} row(s) {batch}"
    return RuleResult(rule, len(bad), example, bad[:SAMPLE_ROWS])


def check_rules(contracts: dict[str, Contract]) -> None:
    """Every rule's SQL binds against the tables the contracts declare (empty, in memory): a
    misspelt column or table, or a wrong type, fails when the definitions load, naming the
    contract and the rule, not mid-run."""
    con = duckdb.connect()
    for contract in contracts.values():
        con.execute(contract.create_table_sql())
    for contract in contracts.values():
        table = quote(contract.table)
        for rule in contract.rules:
            if rule.condition:  # `new` is the row, as where the rule runs
                sql = f"SELECT * FROM {table} AS new WHERE ({rule.condition}) IS FALSE"
            elif rule.query:
                sql = rule.query.replace("{object}", table)
            else:
                continue
            try:
                con.execute(f"EXPLAIN {sql}")
            except duckdb.Error as e:
                reason = str(e).splitlines()[0]
                raise DeclarationError(
                    f"{contract.path}: rule {rule.name!r} does not run on the table the "
                    f"contract declares: {cut(reason)}"
                ) from None
    con.close()
