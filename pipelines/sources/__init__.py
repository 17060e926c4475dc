"""Source connectors: each returns the rows of one raw table for a window of UTC days as a Polars
frame with the contract's column names (values may still be text: the warehouse casts and
validates them), plus `_source` and `_row` saying where each row came from. Connectors never write
to the warehouse; the asset does."""

from __future__ import annotations

from typing import Protocol

import polars as pl

from pipelines.sources.sample import SampleConnector
from pipelines.validation import Window


class Connector(Protocol):
    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame: ...


CONNECTORS: dict[str, type[Connector]] = {"sample": SampleConnector}
