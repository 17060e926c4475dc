"""Column lineage of a derived table, parsed from its SQL with sqlglot (DuckDB dialect): for each
output column, the table columns it is computed from. Shown in the Dagster UI."""

from __future__ import annotations

from functools import cache

import dagster as dg
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope


@cache  # a process reuses it across runs
def column_lineage(
    query: str, columns: tuple[str, ...], schema: tuple[tuple[str, tuple[str, ...]], ...]
) -> dg.TableColumnLineage:
    tables = {table: dict.fromkeys(names, "UNKNOWN") for table, names in schema}
    try:  # parsed and qualified once for all columns (sqlglot's lineage() redoes it per column)
        qualified = qualify(
            sqlglot.parse_one(query, dialect="duckdb"),
            dialect="duckdb",
            schema=tables,
            validate_qualify_columns=False,
            identify=False,
        )
        scope = build_scope(qualified)
    except SqlglotError:
        return dg.TableColumnLineage(deps_by_column={})
    deps = {}
    for column in columns:
        try:
            root = lineage(column, qualified, scope=scope, dialect="duckdb", copy=False)
        except SqlglotError:
            continue  # a column sqlglot cannot follow is left out, not guessed
        sources = {
            (leaf.source.name, leaf.name.split(".")[-1])
            for leaf in root.walk()
            # a table, not a table function (range(...) AS days(day): no name, no asset)
            if not leaf.downstream and isinstance(leaf.source, exp.Table) and leaf.source.name
        }
        deps[column] = [
            dg.TableColumnDep(asset_key=dg.AssetKey(table), column_name=name)
            for table, name in sorted(sources)
        ]
    return dg.TableColumnLineage(deps_by_column=deps)


def lineage_table(lineage: dg.TableColumnLineage, columns: list[str]) -> dg.TableMetadataValue:
    """The lineage as a table (which the UI shows inline, where it shows `dagster/column_lineage`
    only per column, in the column schema), a row per column of the table (in its order): the
    upstream columns it is computed from, as `table.column`."""
    deps = lineage.deps_by_column
    rows = []
    for column in columns:
        if column not in deps:
            upstream = "(not followed: sqlglot could not trace it)"
        elif not deps[column]:
            upstream = "(no table column: a constant, a parameter or a generated series)"
        else:
            upstream = ", ".join(
                f"{d.asset_key.to_user_string()}.{d.column_name}" for d in deps[column]
            )
        rows.append(dg.TableRecord({"column": column, "upstream columns": upstream}))
    return dg.MetadataValue.table(
        records=rows,
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("column", description="a column of this table"),
                dg.TableColumn("upstream columns", description="the columns it is computed from"),
            ]
        ),
    )
