"""The embedded sample: CSV files made by scripts/generate_sample.py (also the drop-file format),
and machine telemetry generated on the fly (pipelines/telemetry.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipelines.batch import Part, Window
from pipelines.errors import cut, shown_list
from pipelines.settings import SAMPLE_DATA_DIR
from pipelines.sources.common import (
    OPTIONAL,
    TIME_COLUMNS,
    check_times,
    csv_bytes,
    empty,
    utc_day,
)
from pipelines.sources.errors import SourceError
from pipelines.sqltext import literal
from pipelines.telemetry import generate_sql


class SampleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_dir: Path = SAMPLE_DATA_DIR
    # miner_telemetry is generated (pipelines/telemetry.py), for this many machines
    telemetry_machines: int = Field(200, ge=1)


class SampleConnector:
    """Reads `<table>.csv` from the sample folder, keeping the window's rows.

    The file is checked whole as drop files are (common.csv_bytes: UTF-8 text, not cut short,
    no ragged line), and its `date`/`ts` values too, every row (common.check_times): a `date`
    exactly YYYY-MM-DD, a `ts` ISO 8601 with seconds and its UTC offset. A value that is not
    stops the read naming the file, line, column, value and why (DuckDB's cast would take
    `2024-04-10x` as 2024-04-10, and a time without an offset as UTC). Rows are placed by the
    UTC day of that value. The other values stay text, cast and checked by the contract.
    """

    Settings: ClassVar[type[BaseModel]] = SampleSettings
    tables: ClassVar[set[str]] = {
        "btc_network_daily", "mining_output_daily", "energy_prices_hourly", "fx_rates_daily",
        "gpu_market_prices_daily", "gpu_usage_daily", "miner_telemetry", "gpu_offers_observed",
    }  # fmt: skip

    def __init__(self, settings: SampleSettings | None = None):
        self.settings = settings or SampleSettings()
        self.data_dir = self.settings.data_dir

    def zones_served(self) -> set[str] | None:
        """The bidding zones of the sample's energy_prices_hourly.csv (the sample serves the zones
        its file holds, on the days it holds), or None when that file cannot be read: the run
        then says why, naming the file."""
        path = self.data_dir / "energy_prices_hourly.csv"
        try:
            zones = pl.read_csv(path, columns=["bidding_zone"], infer_schema=False)
        except (OSError, pl.exceptions.PolarsError):
            return None
        return set(zones["bidding_zone"].drop_nulls())

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame | str:
        if table == "miner_telemetry":  # a query: the rows are generated in the warehouse
            return self._telemetry(window)
        if table == "gpu_offers_observed":  # the sample's GPU prices are days, not observations
            return empty(table)
        what = f"sample ({table})"
        path = self.data_dir / f"{table}.csv"
        data = csv_bytes(what, path)
        # All columns as text: the contract casts them, and reports a value that does not cast.
        try:
            frame = pl.read_csv(data, infer_schema=False)
        except pl.exceptions.PolarsError as e:
            raise SourceError(f"{what}: {path}: not a readable CSV file: {cut(str(e))}") from None
        frame = frame.with_row_index("_row", offset=2).with_columns(
            pl.lit(str(path)).alias("_source"),
            # as in drop files, a column the contract does not require may be left out
            *(
                pl.lit(None, pl.Utf8).alias(c)
                for c in OPTIONAL.get(table, ())
                if c not in frame.columns
            ),
        )
        times = [c for c in TIME_COLUMNS if c in frame.columns]
        check_times(what, frame, times)
        if partition_column not in frame.columns:
            raise SourceError(
                f"{what}: {path}: no column {partition_column!r} to place the rows in days "
                f"(the header: {shown_list(frame.columns[1:-1])})"
            )
        day = utc_day(partition_column)
        return frame.filter((day >= window.start) & (day < window.end))

    def fetch_part(self, table: str, window: Window, partition_column: str, part: Part) -> str:
        """One site's telemetry (`part`: site_id=...), generated alone."""
        if table != "miner_telemetry" or part.column != "site_id":
            raise SourceError(f"sample ({table}): cannot be read by {part.column}")
        return self._telemetry(window, part.value)

    def _telemetry(self, window: Window, site_id: str | None = None) -> str:
        machines = self.settings.telemetry_machines
        of_site = f" at {site_id}" if site_id else ""
        return (
            f"SELECT *, {literal(f'sample telemetry of {machines} machines{of_site}')} AS _source, "
            f"row_number() OVER (ORDER BY ts, machine_id) AS _row "
            f"FROM ({generate_sql(machines, window, site_id=site_id)})"
        )
