"""Column lineage of a derived table, parsed from its SQL with sqlglot (DuckDB dialect): for each
output column, the table columns it is computed from. Shown in the Dagster UI."""

from __future__ import annotations

from functools import cache

import dagster as dg
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage


@cache  # parsing costs ~0.1 s a column; a process reuses it across runs
def column_lineage(
    query: str, columns: tuple[str, ...], schema: tuple[tuple[str, tuple[str, ...]], ...]
) -> dg.TableColumnLineage:
    tables = {table: dict.fromkeys(names, "UNKNOWN") for table, names in schema}
    deps = {}
    for column in columns:
        try:
            root = lineage(column, query, schema=tables, dialect="duckdb")
        except SqlglotError:
            continue  # a column sqlglot cannot follow is left out, not guessed
        sources = {
            (leaf.source.name, leaf.name.split(".")[-1])
            for leaf in root.walk()
            if not leaf.downstream and isinstance(leaf.source, exp.Table)
        }
        deps[column] = [
            dg.TableColumnDep(asset_key=dg.AssetKey(table), column_name=name)
            for table, name in sorted(sources)
        ]
    return dg.TableColumnLineage(deps_by_column=deps)
