"""Derived tables declared as SQL files under `assets/sql/`, each with a YAML header in comments.

    -- description: What the table holds.
    -- group: economics
    -- partition_column: date      # daily-partitioned on this column; omit for a whole-table asset
    -- lookback_days: {fx_rates_daily: 7}   # optional: a day also reads the 7 days before it

The query may use `$start_date` and `$end_date` (the partition window, end exclusive) and any
setting of `economics:` in assets/settings.yaml, flattened with `_`
(e.g. `$reference_gpu_utilisation`).

Dependencies are not declared: they are the tables the query reads, parsed from it with sqlglot
(DuckDB dialect) when the definitions load. A table read is every table reference in a FROM or
JOIN, at any depth (CTEs, subqueries, EXISTS/IN, LATERAL), that is not a CTE name in scope; table
functions (`range(...)`, `read_parquet(...)`, `unnest(...)`) are not tables. Views
(`assets/views/`) and rollups (`assets/rollups/`) have the same header; a view may be read like
a table, and a rollup reads the batch `new` (its source's valid rows), which is not a dependency.
The header only says what the SQL cannot: `lookback_days` names tables the query reads. Each of
these raises DeclarationError naming the file: SQL sqlglot cannot parse, not one SELECT query, a
schema-qualified or non-lower-case table name, a `deps:` key (no longer declared), a lookback on
a table the query does not read or on an unpartitioned table or view, a rollup not reading `new`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import sqlglot
import yaml
from pydantic import Field, PrivateAttr, ValidationError
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from pipelines.declarations import Strict, describe_validation_error
from pipelines.errors import DeclarationError
from pipelines.plots import PlotSpec

ROLLUPS_DIR = "rollups"  # assets/rollups/*.sql read the batch...
BATCH = "new"  # ...under this name (pipelines/warehouse.py), not a table
TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SqlHeader(Strict):
    description: str
    group: str
    partition_column: str | None = None
    # {table: N} when a day also reads the N days before it of `table`, a table the query reads
    # (e.g. the latest FX rate published on or before the day).
    lookback_days: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    owner: str | None = None  # default: settings.yaml default_owner
    plot: PlotSpec | None = None  # drawn into the metadata after each write (pipelines/plots.py)
    _reads: tuple[str, ...] = PrivateAttr(default=())  # set from the query by parse_sql_asset

    def lookbacks(self) -> dict[str, int]:
        return dict(self.lookback_days)

    def dep_names(self) -> list[str]:
        """The tables (and views) the query reads, sorted: the asset's dependencies."""
        return list(self._reads)


@dataclass(frozen=True)
class SqlAssetSpec:
    table: str
    header: SqlHeader
    query: str
    path: Path

    def parameters_used(self) -> set[str]:
        return set(re.findall(r"\$([a-z_][a-z0-9_]*)", self.query))


def tables_read(query: str, where: str, batch: str | None = None) -> list[str]:
    """The tables `query` reads (sorted), `batch` left out; DeclarationError `where` if sqlglot
    cannot parse it, it is not one SELECT query, or a name read is not a plain table name."""
    try:
        statements = sqlglot.parse(query, dialect="duckdb")
    except SqlglotError as e:
        raise DeclarationError(f"{where}: sqlglot cannot parse the query: {e}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise DeclarationError(f"{where}: the query is not one SELECT query")
    tree = statements[0]
    try:
        scopes = traverse_scope(tree)
    except SqlglotError as e:
        raise DeclarationError(f"{where}: sqlglot cannot tell what the query reads: {e}") from None
    read = {  # a CTE's name resolves to its scope, not to an exp.Table
        source
        for scope in scopes
        for source in scope.sources.values()
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier)
    }
    qualified = sorted({t.sql(dialect="duckdb") for t in read if t.db or t.catalog})
    if qualified:
        raise DeclarationError(f"{where}: name the tables without a schema: {qualified}")
    names = {t.name for t in read}
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    # a table reference the scopes missed (sqlglot does not scope every construct): refused
    tables = {t.name for t in tree.find_all(exp.Table) if isinstance(t.this, exp.Identifier)}
    unplaced = tables - names - ctes
    if unplaced:
        raise DeclarationError(f"{where}: sqlglot cannot tell whether it reads {sorted(unplaced)}")
    if batch is not None:
        if batch not in names:
            raise DeclarationError(
                f"{where}: a rollup reads its batch `{batch}`; this one does not"
            )
        names.discard(batch)
    odd = sorted(n for n in names if not TABLE_NAME.fullmatch(n))
    if odd:
        raise DeclarationError(
            f"{where}: reads {odd}: not table names (^[a-z][a-z0-9_]*$; files by read_parquet())"
        )
    return sorted(names)


def parse_sql_asset(path: Path) -> SqlAssetSpec:
    lines = path.read_text().splitlines()
    header_lines = []
    for line in lines:
        if not line.startswith("--"):
            break
        header_lines.append(line[2:].removeprefix(" "))
    query = "\n".join(lines[len(header_lines) :]).strip().rstrip(";")
    try:
        raw = yaml.safe_load("\n".join(header_lines)) or {}
    except yaml.YAMLError as e:
        raise DeclarationError(f"{path}: the header is not valid YAML: {e}") from None
    if not query:
        raise DeclarationError(f"{path}: no query after the header")
    rollup = path.parent.name == ROLLUPS_DIR
    if isinstance(raw, dict) and "deps" in raw:
        reads = tables_read(query, str(path), BATCH if rollup else None)
        raise DeclarationError(
            f"{path}: header field 'deps' is not declared any more: the dependencies are the "
            f"tables the query reads, here {reads}; remove it (a lookback is "
            "`lookback_days: {table: days}`)"
        )
    try:
        header = SqlHeader.model_validate(raw)
    except ValidationError as e:
        raise DeclarationError(f"{path}: header {describe_validation_error(e)}") from None
    reads = tables_read(query, str(path), BATCH if rollup else None)
    if header.lookback_days and (rollup or header.partition_column is None):
        raise DeclarationError(
            f"{path}: lookback_days is for a partitioned table of assets/sql/, not a view or rollup"
        )
    not_read = sorted(set(header.lookback_days) - set(reads))
    if not_read:
        raise DeclarationError(
            f"{path}: lookback_days names {not_read}, which the query does not read "
            f"(it reads {reads})"
        )
    header._reads = tuple(reads)
    return SqlAssetSpec(path.stem, header, query, path)


def load_sql_assets(assets_dir: Path) -> list[SqlAssetSpec]:
    return [parse_sql_asset(p) for p in sorted((assets_dir / "sql").glob("*.sql"))]


def load_views(assets_dir: Path) -> list[SqlAssetSpec]:
    """Views for analysts, `assets/views/*.sql`: the same header, no partitions, no contract."""
    views = [parse_sql_asset(p) for p in sorted((assets_dir / "views").glob("*.sql"))]
    for view in views:
        if view.header.partition_column or view.parameters_used():
            raise DeclarationError(f"{view.path}: a view has no partition_column or parameters")
    return views


def flatten(settings: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a_b': 1}: settings as SQL parameters."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_reads(specs: list[SqlAssetSpec], tables: set[str]) -> None:
    """DeclarationError naming the file if a query reads a name that is none of `tables` (the
    tables and views of the code location): Dagster would take it for an external asset."""
    for spec in specs:
        unknown = sorted(set(spec.header.dep_names()) - tables)
        if unknown:
            raise DeclarationError(f"{spec.path}: reads {unknown}, which are no table or view")
