"""The embedded sample: CSV files made by scripts/generate_sample.py (also the drop-file format),
and machine telemetry generated on the fly (pipelines/telemetry.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipelines.batch import Window
from pipelines.settings import SAMPLE_DATA_DIR
from pipelines.telemetry import generate_sql


class SampleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_dir: Path = SAMPLE_DATA_DIR
    # miner_telemetry is generated (pipelines/telemetry.py), for this many machines
    telemetry_machines: int = Field(200, ge=1)


class SampleConnector:
    """Reads `<table>.csv` from the sample folder, keeping the window's rows."""

    Settings: ClassVar[type[BaseModel]] = SampleSettings
    tables: ClassVar[set[str]] = {
        "btc_network_daily", "mining_output_daily", "energy_prices_hourly", "fx_rates_daily",
        "gpu_market_prices_daily", "gpu_usage_daily", "miner_telemetry",
    }  # fmt: skip

    def __init__(self, settings: SampleSettings | None = None):
        self.settings = settings or SampleSettings()
        self.data_dir = self.settings.data_dir

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame | str:
        if table == "miner_telemetry":  # a query: the rows are generated in the warehouse
            machines = self.settings.telemetry_machines
            return (
                f"SELECT *, 'sample telemetry of {machines} machines' AS _source, "
                f"row_number() OVER (ORDER BY ts, machine_id) AS _row "
                f"FROM ({generate_sql(machines, window)})"
            )
        path = self.data_dir / f"{table}.csv"
        # All columns as text: the contract casts them, and reports a value that does not cast.
        frame = pl.read_csv(path, infer_schema=False).with_row_index("_row", offset=2)
        day = pl.col(partition_column).str.slice(0, 10)
        return frame.filter(
            (day >= window.start.isoformat()) & (day < window.end.isoformat())
        ).with_columns(pl.lit(str(path)).alias("_source"))
