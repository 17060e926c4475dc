"""Machine telemetry drop files -> miner_telemetry (connector `telemetry_drop`).

Settings (assets/sources.yaml): `folder` (relative paths resolve against the project directory)
and `glob` (default `telemetry_*.parquet`; `*.csv` for CSV exports). Each file holds one site's
day or hour, and says which in its name (`telemetry_se-lulea_2024-04-01.parquet`,
`..._2024-04-01T13.csv`): a window reads the files whose name holds one of its days, where they
lie (a DuckDB scan, never loaded into Python). Each file must have the contract's columns
(data_contracts/miner_telemetry.odcs.yaml), in any order, or it is refused naming the file and
the columns; Parquet keeps its types, CSV is cast and checked by the contract.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from pipelines.batch import Window
from pipelines.sources.common import COLUMNS
from pipelines.sources.errors import SourceError
from pipelines.sources.file_drop import DropFolderSettings, check_header, existing_folder
from pipelines.telemetry import scan_sql

DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def _columns(path: Path) -> list[str]:
    """A file's column names, from the Parquet footer or the CSV header line."""
    if path.suffix == ".parquet":
        try:
            return pq.read_schema(path).names
        except pa.ArrowInvalid as e:
            raise SourceError(f"telemetry_drop: {path} is not a whole Parquet file: {e}") from None
    with path.open() as f:
        return [c.strip() for c in f.readline().strip().split(",")]


class TelemetryDropSettings(DropFolderSettings):
    glob: str = Field("telemetry_*.parquet", description="the telemetry files")


class TelemetryDropConnector:
    Settings: ClassVar[type[BaseModel]] = TelemetryDropSettings
    tables: ClassVar[set[str]] = {"miner_telemetry"}

    def __init__(self, settings: TelemetryDropSettings):
        self.settings = settings

    def files(self, window: Window) -> list[Path]:
        folder = existing_folder(self.settings, "telemetry_drop")
        chosen = []
        for path in sorted(folder.glob(self.settings.glob)):
            found = DAY_IN_NAME.search(path.name)
            if found is None:
                raise SourceError(f"telemetry_drop: {path} has no UTC day (YYYY-MM-DD) in its name")
            if window.start <= date.fromisoformat(found.group(1)) < window.end:
                chosen.append(path)
        if not chosen:
            raise SourceError(
                f"telemetry_drop: no file matching {self.settings.glob!r} in {folder} holds a day "
                f"in [{window.start}, {window.end}): the export has not arrived"
            )
        for path in chosen:  # each file whole: a column missing in one is not a null
            check_header("telemetry_drop", path, _columns(path), COLUMNS["miner_telemetry"])
        return chosen

    def fetch(self, table: str, window: Window, partition_column: str) -> str:
        return scan_sql(self.files(window))
