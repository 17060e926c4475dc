"""A contract's rules compiled into one plan: each rule is one query over the batch that selects
what breaks it. Great Expectations runs each query once and counts (pipelines/expectations.py);
the writer runs the same query, or for a row rule the same predicate, to find the failing rows
for the quarantine and the message (pipelines/validation.py). There is no second implementation
of a rule to disagree with the first.

`{batch}` in a query is the batch: the staged rows that are of their types, with the columns of
the contract and `_source` and `_row` (where each came from). A row is `new` in a row condition.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from pipelines.batch import Part, Window
from pipelines.contracts import Contract, Rule, utc_day
from pipelines.errors import DeclarationError, cut
from pipelines.sqltext import literal, quote

PARTITION_RULE = "within_partition"


@dataclass(frozen=True)
class Check:
    """A rule as it runs on a batch: `failing` selects its failing rows (a row rule), or the
    duplicated keys, the days off their row count, the offending groups (a rule on the batch as
    a whole, judged on the rows the write keeps)."""

    rule: Rule
    failing: str

    @property
    def row_level(self) -> bool:
        return self.rule.condition is not None


def rule_plan(
    contract: Contract, window: Window | None, partition_column: str | None,
    part: Part | None = None,
) -> list[Check]:  # fmt: skip
    """The checks of a batch of `contract.table` for `window` (and `part`): the row rules (and
    that every row falls in the window and part), then the rules on the batch as a whole."""
    row_rules = [r for r in contract.rules if r.condition]
    if window is not None and partition_column is not None:
        day = utc_day(quote(partition_column))
        # the run's dates (date objects), not values from a file
        within = f"{partition_column} within [{window.start}, {window.end})"
        condition = f"{day} >= DATE '{window.start}' AND {day} < DATE '{window.end}'"
        if part is not None:  # the part's value: a declared site id, not a value from a file
            within += f" and {part.column} = {part.value}"
            condition += f" AND {quote(part.column)} = {literal(part.value)}"
        row_rules.append(Rule(PARTITION_RULE, within, "error", partition_column, condition))
    plan = [
        Check(r, f"SELECT * FROM {{batch}} AS new WHERE ({r.condition}) IS FALSE")
        for r in row_rules
    ]
    # the rows the write keeps: those that break no blocking row rule
    keeps = " AND ".join(f"({r.condition}) IS NOT FALSE" for r in row_rules if r.blocking)
    kept = f"(SELECT * FROM {{batch}} AS new WHERE {keeps or 'true'})"
    for rule in contract.rules:
        if rule.unique_key:
            key = ", ".join(quote(k) for k in rule.unique_key)
            # The keys seen twice in the batch by a 64-bit hash first: a grouping of integers,
            # cheap, and spilling to disk past the memory limit (a list per key of 144 million
            # rows would not). A key duplicated among the rows kept has its hash among them (the
            # kept rows are some of the batch's), so only the rows with those hashes, usually
            # none, are checked exactly, and their rows listed.
            seen_twice = f"SELECT hash({key}) FROM {{batch}} GROUP BY ALL HAVING count(*) > 1"
            failing = (
                f"SELECT {key}, count(*) AS copies, list(_row ORDER BY _row) AS rows, "
                f"min(_source) AS _source FROM (SELECT * FROM {{batch}} AS new WHERE hash({key}) "
                f"IN ({seen_twice}) AND {keeps or 'true'}) AS kept "
                "GROUP BY ALL HAVING count(*) > 1 ORDER BY min(_row)"
            )
        elif rule.row_count_between:
            failing = _row_count(rule, kept, window, partition_column)
        elif rule.query:
            failing = rule.query.replace("{object}", kept)
        else:
            continue
        plan.append(Check(rule, failing))
    return plan


def _row_count(rule: Rule, kept: str, window: Window | None, partition_column: str | None) -> str:
    """The days of the window (or the table, unpartitioned) whose row count is off."""
    low, high = rule.row_count_between
    if window is None or partition_column is None:
        return (
            f"SELECT 'the table' AS day, count(*) AS rows FROM {kept} AS kept "
            f"HAVING count(*) NOT BETWEEN {low} AND {high}"
        )
    column = quote(partition_column)
    return (
        f"SELECT CAST(day AS DATE) AS day, coalesce(n, 0) AS rows FROM range(DATE "
        f"'{window.start}', DATE '{window.end}', INTERVAL 1 DAY) AS days(day) LEFT JOIN (SELECT "
        f"{utc_day(column)} AS of_day, count({column}) AS n FROM {kept} AS kept GROUP BY 1) "
        f"ON of_day = day WHERE coalesce(n, 0) NOT BETWEEN {low} AND {high} ORDER BY day"
    )


def bind_rules(contracts: dict[str, Contract]) -> None:
    """Every query of every plan binds against the tables the contracts declare (empty, in
    memory): a misspelt column or table, or a wrong type, fails when the definitions load,
    naming the contract and the rule, not mid-run."""
    con = duckdb.connect()
    for contract in contracts.values():
        con.execute(contract.create_table_sql())
    for contract in contracts.values():
        batch = (
            f"(SELECT *, CAST(NULL AS VARCHAR) AS _source, CAST(NULL AS BIGINT) AS _row "
            f"FROM {quote(contract.table)})"
        )
        for check in rule_plan(contract, None, None):
            try:
                con.execute(f"EXPLAIN {check.failing.replace('{batch}', batch)}")
            except duckdb.Error as e:
                reason = str(e).splitlines()[0]
                raise DeclarationError(
                    f"{contract.path}: rule {check.rule.name!r} does not run on the table the "
                    f"contract declares: {cut(reason)}"
                ) from None
    con.close()
