"""Derived tables declared as SQL files under `assets/sql/`, each with a YAML header in comments.

    -- description: What the table holds.
    -- group: economics
    -- deps: [btc_network_daily, {fx_rates_daily: {lookback_days: 7}}]
    -- partition_column: date      # daily-partitioned on this column; omit for a whole-table asset

The query may use `$start_date` and `$end_date` (the partition window, end exclusive) and any
setting of `economics:` in assets/settings.yaml, flattened with `_`
(e.g. `$reference_gpu_utilisation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from pipelines.declarations import Strict, describe_validation_error
from pipelines.errors import DeclarationError
from pipelines.plots import PlotSpec


class Lookback(Strict):
    lookback_days: int = Field(ge=1)


class SqlHeader(Strict):
    description: str
    group: str
    # A table name, or {table: {lookback_days: N}} when a day also reads the N days before it
    # (e.g. the latest FX rate published on or before the day).
    deps: list[str | dict[str, Lookback]]
    partition_column: str | None = None
    owner: str | None = None  # default: settings.yaml default_owner
    plot: PlotSpec | None = None  # drawn into the metadata after each write (pipelines/plots.py)

    def lookbacks(self) -> dict[str, int]:
        return {
            name: options.lookback_days
            for dep in self.deps
            if isinstance(dep, dict)
            for name, options in dep.items()
        }

    def dep_names(self) -> list[str]:
        return [dep if isinstance(dep, str) else next(iter(dep)) for dep in self.deps]


@dataclass(frozen=True)
class SqlAssetSpec:
    table: str
    header: SqlHeader
    query: str
    path: Path

    def parameters_used(self) -> set[str]:
        return set(re.findall(r"\$([a-z_][a-z0-9_]*)", self.query))


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
        header = SqlHeader.model_validate(raw)
    except yaml.YAMLError as e:
        raise DeclarationError(f"{path}: the header is not valid YAML: {e}") from None
    except ValidationError as e:
        raise DeclarationError(f"{path}: header {describe_validation_error(e)}") from None
    if not query:
        raise DeclarationError(f"{path}: no query after the header")
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
