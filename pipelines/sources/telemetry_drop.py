"""Machine telemetry drop files -> miner_telemetry (connector `telemetry_drop`).

Settings (assets/sources.yaml): `folder` (relative paths resolve against the project directory)
and `glob` (default `telemetry_*.parquet`; `*.csv` for CSV exports). Each file holds one site's
day or hour, and says which in its name (`telemetry_se-lulea_2024-04-01.parquet`,
`..._2024-04-01T13.csv`): a window reads the files whose name holds one of its days, where they
lie (a DuckDB scan, never loaded into Python). Each file must have the contract's columns
(data_contracts/miner_telemetry.odcs.yaml), in any order, or it is refused naming the file and
the columns; Parquet keeps its types, CSV is cast and checked by the contract.

`ts` is an instant: a Parquet `ts` that is a timestamp without a time zone, or a CSV `ts` that is
not ISO 8601 with seconds and its UTC offset (common.TS_SHAPE), is refused naming the file (and
the CSV line, value and why): DuckDB's cast would take a time without an offset as UTC. A CSV
file that is not UTF-8 text (UTF-16, gzip, ...) is refused naming what it is.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from pipelines.batch import Part, Window
from pipelines.errors import cut, shown
from pipelines.sources.common import COLUMNS, RULE, TS_SHAPE, not_text, why_not_time
from pipelines.sources.errors import NotArrived, SourceError
from pipelines.sources.file_drop import DropFolderSettings, check_header, existing_folder
from pipelines.sqltext import literal
from pipelines.telemetry import scan_sql

DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def _columns(path: Path) -> list[str]:
    """A file's column names, from the Parquet footer or the CSV header line.

    A Parquet `ts` must be a timestamp with a time zone (an instant), or SourceError.
    """
    if path.suffix == ".parquet":
        try:
            schema = pq.read_schema(path)
        except pa.ArrowInvalid as e:
            raise SourceError(
                f"telemetry_drop: {path} is not a whole Parquet file: {cut(str(e))}"
            ) from None
        if "ts" in schema.names:
            kind = schema.field("ts").type
            if pa.types.is_timestamp(kind) and kind.tz is None:
                raise SourceError(
                    f"telemetry_drop: {path}: column ts is a timestamp without a time zone "
                    f"({kind}): the instant it names is not known; write it as a timestamp "
                    "with a time zone (UTC)"
                )
        return schema.names
    with path.open("rb") as f:
        head = f.read(1 << 16)
    why = not_text(head)
    if why:
        raise SourceError(f"telemetry_drop: {path} {why}")
    line = head.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf")
    try:
        return [c.strip() for c in line.decode("utf-8").strip().split(",")]
    except UnicodeDecodeError:
        raise SourceError(
            f"telemetry_drop: {path} is not UTF-8 text (its header line, line 1, is not); save "
            "or export it as UTF-8"
        ) from None


def _check_csv_ts(files: list[Path]) -> None:
    """Refuse CSV files with a `ts` that is not ISO 8601 with its UTC offset, naming the first
    one's file, line (as the warehouse numbers it, scan_sql), value and why."""
    csv_files = [f for f in files if f.suffix != ".parquet"]
    if not csv_files:
        return
    con = duckdb.connect()
    options = "all_varchar = true, header = true"
    for path in csv_files:
        found = con.execute(
            "SELECT min(line), count(*), arg_min(ts, line) FROM (SELECT ts, "
            f"row_number() OVER () + 1 AS line FROM read_csv({literal(str(path))}, {options})) "
            "WHERE ts IS NOT NULL AND NOT regexp_full_match(ts, $shape)",
            {"shape": TS_SHAPE},
        ).fetchone()
        if found[1]:
            line, count, value = found
            raise SourceError(
                f"telemetry_drop: {path} line {line}: ts {shown(value)} {RULE['TIMESTAMPTZ']}: "
                f"{why_not_time('ts', value)} ({count} such row(s) in the file)"
            )


class TelemetryDropSettings(DropFolderSettings):
    glob: str = Field("telemetry_*.parquet", description="the telemetry files")


class TelemetryDropConnector:
    Settings: ClassVar[type[BaseModel]] = TelemetryDropSettings
    tables: ClassVar[set[str]] = {"miner_telemetry"}

    def __init__(self, settings: TelemetryDropSettings):
        self.settings = settings

    def files(self, window: Window, site_id: str | None = None) -> list[Path]:
        """The files of the window's days (of one site's, with `site_id`: its id in the name)."""
        folder = existing_folder(self.settings, "telemetry_drop")
        chosen = []
        for path in sorted(folder.glob(self.settings.glob)):
            found = DAY_IN_NAME.search(path.name)
            if found is None:
                raise SourceError(f"telemetry_drop: {path} has no UTC day (YYYY-MM-DD) in its name")
            # the site's id right before the day: `telemetry_<site>_<day>...`
            of_site = site_id is None or path.name[: found.start()].endswith(f"_{site_id}_")
            if of_site and window.start <= date.fromisoformat(found.group(1)) < window.end:
                chosen.append(path)
        if not chosen:
            raise NotArrived(
                f"telemetry_drop: no file matching {self.settings.glob!r} in {folder} holds a day "
                f"in [{window.start}, {window.end})"
                + (f" of site {site_id}" if site_id else "")
                + ": the export has not arrived"
            )
        for path in chosen:  # each file whole: a column missing in one is not a null
            check_header("telemetry_drop", path, _columns(path), COLUMNS["miner_telemetry"])
        return chosen

    def fetch(self, table: str, window: Window, partition_column: str) -> str:
        files = self.files(window)
        _check_csv_ts(files)
        return scan_sql(files)

    def fetch_part(self, table: str, window: Window, partition_column: str, part: Part) -> str:
        """One site's files (`part`: site_id=..., the site in each file's name)."""
        if part.column != "site_id":
            raise SourceError(f"telemetry_drop: files are not named by {part.column}")
        files = self.files(window, part.value)
        _check_csv_ts(files)
        return scan_sql(files)
