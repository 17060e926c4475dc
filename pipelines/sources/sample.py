"""The embedded sample: CSV files in pipelines/sample_data/, made by scripts/generate_sample.py."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.settings import SAMPLE_DATA_DIR
from pipelines.validation import Window


class SampleConnector:
    """Reads `<table>.csv` from the sample folder, keeping the window's rows."""

    def __init__(self, data_dir: Path = SAMPLE_DATA_DIR):
        self.data_dir = data_dir

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        path = self.data_dir / f"{table}.csv"
        # All columns as text: the contract casts them, and reports a value that does not cast.
        frame = pl.read_csv(path, infer_schema=False).with_row_index("_row", offset=2)
        day = pl.col(partition_column).str.slice(0, 10)
        return frame.filter(
            (day >= window.start.isoformat()) & (day < window.end.isoformat())
        ).with_columns(pl.lit(str(path)).alias("_source"))
