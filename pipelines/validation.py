"""Validate a staged batch against its contract, inside the writer's transaction, in DuckDB SQL.

The batch is checked as it will be stored: column names, types (a value that does not cast is a
failure with its row), the partition window, then every rule of the contract in one scan. Failures
name the source file or URL, the row, the column, the value and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import duckdb

from pipelines.contracts import Contract, Rule

LINEAGE_COLUMNS = ("_source", "_row")  # where each incoming row came from, for error messages
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Window:
    """A range of UTC days, end exclusive."""

    start: date
    end: date


@dataclass(frozen=True)
class Failure:
    rule: str
    description: str
    blocking: bool
    rows: int
    example: str

    def __str__(self) -> str:
        return (
            f"rule {self.rule!r} ({self.description}) failed for {self.rows} row(s); {self.example}"
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _where(row: dict, contract: Contract, column: str | None, mentioned: tuple = ()) -> str:
    """'file F row R (key=...), column C, value V' for one failing row.

    A rule on several columns shows the values of the `mentioned` ones instead.
    """
    keys = ", ".join(f"{k}={row[k]}" for k in contract.key if k in row and k != column)
    at = f"{row['_source']} row {row['_row']}" + (f" ({keys})" if keys else "")
    if column is not None:
        return f"first at {at}, column {column!r}, value {row[column]!r}"
    values = ", ".join(f"{c}={row[c]!r}" for c in mentioned if c in row)
    return f"first at {at}" + (f": {values}" if values else "")


def _fetch_dicts(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def stage_typed(
    con: duckdb.DuckDBPyConnection, contract: Contract, incoming: str, origin: str
) -> list[Failure]:
    """Create temp table `new` from `incoming`, cast to the contract's types.

    Returns failures of the column-set and type rules (then `new` is not created).
    """
    present = [r[0] for r in con.execute(f"DESCRIBE {incoming}").fetchall()]
    wanted = contract.column_names
    missing = [c for c in wanted if c not in present]
    unexpected = [c for c in present if c not in wanted and c not in LINEAGE_COLUMNS]
    if missing or unexpected:
        detail = "; ".join(
            part
            for part in (
                f"missing column(s) {missing}" if missing else "",
                f"unexpected column(s) {unexpected}" if unexpected else "",
            )
            if part
        )
        return [
            Failure(
                "columns_match_contract", f"columns are {wanted}", True, 0, f"{origin}: {detail}"
            )
        ]
    source = "_source" if "_source" in present else f"'{origin}'"
    row = "_row" if "_row" in present else "row_number() OVER ()"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE incoming_rows AS "
        f"SELECT *, {source} AS _src, {row} AS _rownum FROM {incoming}"
    )
    casts = {c.name: f"TRY_CAST({_quote(c.name)} AS {c.type})" for c in contract.columns}
    counts = con.execute(
        "SELECT "
        + ", ".join(
            f"count(*) FILTER (WHERE {_quote(n)} IS NOT NULL AND {cast} IS NULL)"
            for n, cast in casts.items()
        )
        + " FROM incoming_rows"
    ).fetchone()
    failures = []
    for (name, cast), bad in zip(casts.items(), counts, strict=True):
        if bad:
            type_ = next(c.type for c in contract.columns if c.name == name)
            (row,) = _fetch_dicts(
                con,
                f"SELECT *, _src AS _source, _rownum AS _row FROM incoming_rows "
                f"WHERE {_quote(name)} IS NOT NULL AND {cast} IS NULL ORDER BY _rownum LIMIT 1",
            )
            failures.append(
                Failure(
                    f"{name}_type", f"{name} is {type_}", True, bad, _where(row, contract, name)
                )
            )
    if not failures:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE new AS SELECT "
            + ", ".join(f"{cast} AS {_quote(n)}" for n, cast in casts.items())
            + ", _src AS _source, _rownum AS _row FROM incoming_rows"
        )
    con.execute("DROP TABLE incoming_rows")
    return failures


def _row_rules(con, contract: Contract, rules: list[Rule]) -> list[Failure]:
    if not rules:
        return []
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE NOT ({r.condition}))" for r in rules)
        + " FROM new"
    ).fetchone()
    failures = []
    for rule, bad in zip(rules, counts, strict=True):
        if bad:
            (row,) = _fetch_dicts(
                con, f"SELECT * FROM new WHERE NOT ({rule.condition}) ORDER BY _row LIMIT 1"
            )
            mentioned = tuple(
                c
                for c in contract.column_names
                if re.search(rf"\b{c}\b", rule.condition) and c not in contract.key
            )
            failures.append(
                Failure(
                    rule.name,
                    rule.description,
                    rule.blocking,
                    bad,
                    _where(row, contract, rule.column, mentioned),
                )
            )
    return failures


def _unique_key(con, contract: Contract, rule: Rule) -> list[Failure]:
    key = ", ".join(_quote(k) for k in rule.unique_key)
    dupes = _fetch_dicts(
        con,
        f"SELECT {key}, count(*) AS copies, list(_row ORDER BY _row) AS rows, "
        f"any_value(_source) AS _source FROM new GROUP BY ALL HAVING count(*) > 1 "
        f"ORDER BY min(_row)",
    )
    if not dupes:
        return []
    first = dupes[0]
    values = ", ".join(f"{k}={first[k]}" for k in rule.unique_key)
    example = f"first: ({values}) in {first['_source']} rows {first['rows'][:SAMPLE_ROWS]}"
    return [Failure(rule.name, rule.description, rule.blocking, len(dupes), example)]


def _row_count(
    con, rule: Rule, window: Window | None, partition_column: str | None
) -> list[Failure]:
    low, high = rule.row_count_between
    if window is None or partition_column is None:
        (n,) = con.execute("SELECT count(*) FROM new").fetchone()
        bad = [] if low <= n <= high else [{"day": "the table", "n": n}]
    else:
        bad = _fetch_dicts(
            con,
            f"SELECT day::DATE AS day, count(new._row) AS n "
            f"FROM range($start::DATE, $end::DATE, INTERVAL 1 DAY) AS days(day) "
            f"LEFT JOIN new ON CAST(new.{_quote(partition_column)} AS DATE) = day "
            f"GROUP BY day HAVING count(new._row) NOT BETWEEN {low} AND {high} ORDER BY day",
            {"start": window.start, "end": window.end},
        )
    if not bad:
        return []
    example = f"first: {bad[0]['day']} has {bad[0]['n']} row(s)"
    return [Failure(rule.name, rule.description, rule.blocking, len(bad), example)]


def _partition_window(con, contract, window: Window, partition_column: str) -> list[Failure]:
    condition = (
        f"CAST({_quote(partition_column)} AS DATE) >= DATE '{window.start}' "
        f"AND CAST({_quote(partition_column)} AS DATE) < DATE '{window.end}'"
    )
    rule = Rule(
        "within_partition",
        f"{partition_column} within [{window.start}, {window.end})",
        "error",
        partition_column,
        condition,
    )
    return _row_rules(con, contract, [rule])


def check_rules(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    window: Window | None,
    partition_column: str | None,
) -> list[Failure]:
    """Every rule of `contract` against temp table `new`."""
    failures = []
    if window is not None and partition_column is not None:
        failures += _partition_window(con, contract, window, partition_column)
    failures += _row_rules(con, contract, [r for r in contract.rules if r.condition])
    for rule in contract.rules:
        if rule.unique_key:
            failures += _unique_key(con, contract, rule)
        if rule.row_count_between:
            failures += _row_count(con, rule, window, partition_column)
    return failures
