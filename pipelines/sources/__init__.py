"""Source connectors, chosen per raw table in assets/sources.yaml.

A connector returns the rows of one raw table for a window of UTC days as a Polars frame with the
contract's column names (values may still be text: the warehouse casts and validates them), plus
`_source` (the file or URL, never a secret) and `_row` (the row within it) for error messages; or,
for data too big for Python (machine telemetry), a DuckDB query that reads such rows.
Connectors never write to the warehouse; the asset does.

Each connector class has a `Settings` model (its options in sources.yaml, checked strictly), a
`tables` set (the raw tables it can load) and `fetch(table, window, partition_column)`. A
connector of energy_prices_hourly says which bidding zones it serves with `zones_served()` (None:
it cannot say, as file_drop), which the declarations check the sites' zones against at load.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import polars as pl
from pydantic import BaseModel, ValidationError

from pipelines.batch import Part, Window
from pipelines.declarations import describe_validation_error
from pipelines.errors import DeclarationError
from pipelines.sources.ecb import EcbConnector
from pipelines.sources.energy_charts import EnergyChartsConnector
from pipelines.sources.entsoe import EntsoeConnector
from pipelines.sources.ercot import ErcotConnector
from pipelines.sources.file_drop import FileDropConnector
from pipelines.sources.mempool import MempoolConnector
from pipelines.sources.sample import SampleConnector
from pipelines.sources.telemetry_drop import TelemetryDropConnector
from pipelines.sources.vastai import VastaiConnector


class Connector(Protocol):
    Settings: ClassVar[type[BaseModel]]
    tables: ClassVar[set[str]]

    def __init__(self, settings: BaseModel) -> None: ...

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame | str: ...


@runtime_checkable
class PartConnector(Connector, Protocol):
    """A connector that reads a part of a window on its own (`split_by` in sources.yaml)."""

    def fetch_part(self, table: str, window: Window, partition_column: str, part: Part) -> str: ...


CONNECTORS: dict[str, type[Connector]] = {
    "sample": SampleConnector,
    "mempool": MempoolConnector,
    "energy_charts": EnergyChartsConnector,
    "entsoe": EntsoeConnector,
    "ercot": ErcotConnector,
    "ecb": EcbConnector,
    "vastai": VastaiConnector,
    "file_drop": FileDropConnector,
    "telemetry_drop": TelemetryDropConnector,
}


def build_connector(name: str, settings: dict | None, table: str, where: str) -> Connector:
    """The connector `name` for `table`, with its settings checked; errors say `where`."""
    if name not in CONNECTORS:
        raise DeclarationError(f"{where}: unknown connector {name!r}; known: {sorted(CONNECTORS)}")
    cls = CONNECTORS[name]
    if table not in cls.tables:
        raise DeclarationError(
            f"{where}: connector {name!r} cannot load {table!r}; it loads {sorted(cls.tables)}"
        )
    try:
        parsed = cls.Settings.model_validate(settings or {})
    except ValidationError as e:
        raise DeclarationError(
            f"{where}: connector {name!r}: {describe_validation_error(e)}"
        ) from None
    return cls(parsed)
