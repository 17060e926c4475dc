"""Helpers shared by the connectors: contract column lists, UTC days, empty frames; values cut
for messages; CSV files checked whole; dates and timestamps checked, never coerced."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl

from pipelines.batch import Window
from pipelines.errors import cut, shown

# The contract's columns of each raw table (data_contracts/<table>.odcs.yaml), in order.
COLUMNS: dict[str, list[str]] = {
    "btc_network_daily": [
        "date", "difficulty", "hashrate_eh_s", "blocks", "first_height", "subsidy_btc",
        "fees_btc", "price_usd",
    ],
    "mining_output_daily": [
        "date", "site_id", "btc_mined", "hashrate_th_s", "uptime_pct", "energy_mwh",
    ],
    "energy_prices_hourly": [
        "ts", "bidding_zone", "price_per_mwh", "currency", "missing_intervals",
    ],
    "fx_rates_daily": ["date", "currency", "usd_per_unit"],
    "miner_telemetry": [
        "machine_id", "ts", "site_id", "model", "hashrate_th_s", "power_w", "chip_temp_c",
        "fan_rpm", "status",
    ],
    "gpu_market_prices_daily": [
        "date", "gpu_model", "gpu_variant", "lease_type", "source", "price_usd_per_gpu_hour",
        "p25_usd_per_gpu_hour", "p75_usd_per_gpu_hour", "offers", "observations",
    ],
    "gpu_offers_observed": [
        "observed_at", "source", "offer_id", "lease_type", "gpu_model", "gpu_variant", "gpus",
        "price_usd_per_gpu_hour",
    ],
    "gpu_usage_daily": ["date", "site_id", "gpu_model", "gpu_hours_sold", "revenue_usd"],
}  # fmt: skip
LINEAGE = ["_source", "_row"]
# Columns a file may leave out (not required by the contract, or derived from the GPU name).
OPTIONAL: dict[str, set[str]] = {
    "energy_prices_hourly": {"missing_intervals"},  # counted by the API connectors (hourly_means)
    "gpu_market_prices_daily": {
        "gpu_variant", "p25_usd_per_gpu_hour", "p75_usd_per_gpu_hour", "observations",
    },
}  # fmt: skip


def days(window: Window) -> Iterator[date]:
    day = window.start
    while day < window.end:
        yield day
        day += timedelta(days=1)


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def unix(day: date) -> int:
    return int(utc_midnight(day).timestamp())


def empty(table: str) -> pl.DataFrame:
    """No rows, the table's columns (as text) and the lineage columns."""
    schema = {c: pl.Utf8 for c in COLUMNS[table]} | {"_source": pl.Utf8, "_row": pl.Int64}
    return pl.DataFrame(schema=schema)


def finish(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The contract's columns in order, then `_source` and `_row`."""
    if frame.is_empty() and not set(COLUMNS[table]) <= set(frame.columns):
        return empty(table)
    absent = [c for c in OPTIONAL.get(table, ()) if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, pl.Utf8).alias(c) for c in absent)
    return frame.select([*COLUMNS[table], *LINEAGE])


def hourly_means(
    points: pl.DataFrame, window: Window, what: str, *, finest_only: bool = False
) -> pl.DataFrame:
    """Hourly mean prices in UTC from sub-hourly or hourly points, with the intervals each hour
    lacks.

    `points` has ts (UTC datetime, start of the interval), bidding_zone, price_per_mwh (null: no
    price), currency, resolution_min (the interval's length in minutes), _source and _row. With
    `finest_only`, only each hour's finest resolution counts, as when a market publishes the
    same hours at 15 and 60 minutes.

    An hour has 60 / resolution intervals; one without a price (a null, or no point at all) is
    missing. `missing_intervals` counts them (0: the hour is complete), and the mean is of the
    intervals present: the contract's rule `intervals_complete` sets an incomplete hour aside
    (the quarantine), so no mean of fewer intervals is stored in silence. An hour without any
    price is not an hour: every zone must have a price in all 24 hours of every day it has a
    price on (a UTC day always has 24 hours: DST days only have 23 or 25 local hours), or
    SourceError (`what` names the connector), naming the hours without one.
    """
    from pipelines.sources.errors import SourceError

    frame = points.filter(
        (pl.col("ts") >= utc_midnight(window.start)) & (pl.col("ts") < utc_midnight(window.end))
    ).with_columns(pl.col("ts").dt.truncate("1h").alias("hour"))
    if finest_only:
        frame = frame.filter(
            pl.col("resolution_min") == pl.col("resolution_min").min().over("bidding_zone", "hour")
        )
    priced = pl.col("price_per_mwh").is_not_null()
    hourly = (
        frame.sort("ts")
        .group_by("bidding_zone", "hour", maintain_order=True)
        .agg(
            pl.col("price_per_mwh").mean(),
            pl.col("currency").first(),
            pl.col("_source").first(),
            pl.col("_row").first(),
            # intervals of the hour with a price (a point repeated counts once)
            pl.col("ts").filter(priced).n_unique().alias("present"),
            (60 // pl.col("resolution_min").min().clip(1, 60)).alias("expected"),
        )
        .rename({"hour": "ts"})
        .sort("bidding_zone", "ts")
    )
    gaps = hourly.filter(pl.col("present") == 0)  # every interval null: no price for the hour
    counts = hourly.group_by("bidding_zone", pl.col("ts").dt.date().alias("day")).agg(
        (pl.col("present") > 0).sum().alias("len")
    )
    short = counts.filter(pl.col("len") != 24).sort("bidding_zone", "day")
    if not short.is_empty():
        zone, day, n = short.row(0)
        source = hourly.filter(pl.col("bidding_zone") == zone)["_source"][0]
        nulls = gaps.filter((pl.col("bidding_zone") == zone) & (pl.col("ts").dt.date() == day))
        hours = ", ".join(nulls["ts"].dt.strftime("%H:00Z").head(5)) + (
            " ..." if nulls.height > 5 else ""
        )
        detail = f" (no price in any interval of {hours})" if hours else ""
        raise SourceError(f"{what}: {source}: zone {zone} has {n} of 24 UTC hours on {day}{detail}")
    return hourly.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bidding_zone",
        "price_per_mwh",
        "currency",
        (pl.col("expected") - pl.col("present")).clip(0).cast(pl.Int64).alias("missing_intervals"),
        "_source",
        pl.col("_row").cast(pl.Int64),
    )


# --- what a connector says about a value, and the files it reads -------------------------------


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def not_text(data: bytes) -> str | None:
    """Why `data` (a file's first bytes, or all of it) is not UTF-8 CSV text, or None.

    Names what it is instead: gzip, zip (an .xlsx workbook is one), UTF-16/32, binary.
    """
    if data.startswith(b"\x1f\x8b"):
        return "is gzip-compressed, not CSV text: decompress it (gunzip) before dropping it"
    if data.startswith(b"PK\x03\x04"):
        return "is a zip archive (an Excel .xlsx workbook is one), not CSV text: export it as CSV"
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):  # fmt: skip
        if data.startswith(bom):
            return f"is not UTF-8 text (looks like {name}: it starts with its byte-order mark); " \
                "save or export it as UTF-8"  # fmt: skip
    head = data[:4096]
    if b"\x00" in head:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) >= len(head) // 4 and min(even, odd) <= len(head) // 100:
            return "is not UTF-8 text (looks like UTF-16: every other byte is 0); " \
                "save or export it as UTF-8"  # fmt: skip
        return f"is not CSV text: a NUL byte on line {_line_of(data, data.index(0))} (binary?)"
    return None


def csv_bytes(what: str, path: Path) -> bytes:
    """A CSV file's bytes, refused (SourceError naming the file, and the line where there is one)
    unless it is whole UTF-8 CSV text with as many fields on every line as in its header.

    CR-only line endings (classic Mac, Excel's "CSV (Macintosh)") are accepted: Python's csv
    module reads them, and the bytes returned have LF instead (the same lines, numbered the
    same). A file cut short (no line end after its last line) is refused as truncated.
    """
    from pipelines.sources.errors import SourceError

    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(f"{what}: {path}: cannot be read: {cut(str(e))}") from None
    why = not_text(data)
    if why:
        raise SourceError(f"{what}: {path} {why}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(
            f"{what}: {path} is not UTF-8 text: byte 0x{data[e.start]:02x} on line "
            f"{_line_of(data, e.start)} is not UTF-8 (Latin-1 or Windows-1252?); save or export "
            "it as UTF-8"
        ) from None
    if b"\r" in data and b"\n" not in data:  # CR line endings only: the csv module's lines
        data = data.replace(b"\r", b"\n")
        text = text.replace("\r", "\n")
    if data and not data.endswith(b"\n"):
        line = data.count(b"\n") + 1
        raise SourceError(
            f"{what}: {path}: truncated: line {line}, the last, has no line end "
            "(an export always ends with one); the file is incomplete"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    header = None
    while True:
        start = reader.line_num + 1  # the line the next record starts on
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            if "field larger than field limit" in str(e):
                limit = csv.field_size_limit()
                if reader.line_num <= start:
                    span, hint = f"line {start}", ""
                else:
                    span = f"lines {start} to {reader.line_num}"
                    hint = f" (a quote opened on line {start} and not closed?)"
                raise SourceError(
                    f"{what}: {path}: {span}: a field is longer than {limit:,} characters, the "
                    f"CSV reader's limit; no value of a drop file is that long{hint}"
                ) from None
            raise SourceError(f"{what}: {path}: line {start}: not CSV: {cut(str(e))}") from None
        if header is None:
            header = len(row)
        elif len(row) not in (0, header):
            raise SourceError(
                f"{what}: {path}: line {start} has {len(row)} field(s), the header {header}"
            )
    return data


# --- dates and timestamps: checked, never coerced ------------------------------------------------

# The raw tables' time columns (data_contracts/): `date` is a DATE, `ts` a TIMESTAMPTZ.
TIME_COLUMNS = {"date": "DATE", "ts": "TIMESTAMPTZ"}
DATE_SHAPE = r"^\d{4}-\d{2}-\d{2}$"
# ISO 8601 / RFC 3339: seconds, an optional fraction, then Z or the UTC offset (+01, +0100, +01:00)
TS_SHAPE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)$"
TS_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
RULE = {
    "DATE": "is not a day, YYYY-MM-DD",
    "TIMESTAMPTZ": "is not a UTC timestamp with its offset, e.g. 2024-04-02T13:00:00Z or "
    "2024-04-02T15:00:00.000+02:00",
}


def parsed_time(column: str) -> pl.Expr:
    """Text column `column` (a key of TIME_COLUMNS) as a date or UTC datetime; null where the
    text is not exactly of its form (then `why_not_time` says why)."""
    text = pl.col(column)
    if TIME_COLUMNS[column] == "DATE":
        return pl.when(text.str.contains(DATE_SHAPE)).then(
            text.str.to_date("%Y-%m-%d", strict=False)
        )
    parsed = [text.str.to_datetime(f, time_zone="UTC", time_unit="us", strict=False)
              for f in TS_FORMATS]  # fmt: skip
    return pl.when(text.str.contains(TS_SHAPE)).then(pl.coalesce(parsed))


def utc_day(column: str) -> pl.Expr:
    """The UTC day of time column `column` (null where it does not parse)."""
    parsed = parsed_time(column)
    return parsed if TIME_COLUMNS[column] == "DATE" else parsed.dt.date()


def why_not_time(column: str, value: str | None) -> str:
    """Why `value` of time column `column` did not parse (parsed_time gave null)."""
    if value is None:
        return "it is empty"
    if TIME_COLUMNS[column] == "DATE":
        if re.match(r"\d{4}-\d{2}-\d{2}", value) and not re.fullmatch(DATE_SHAPE, value):
            return "it has more than the day (text after YYYY-MM-DD)"
        if re.fullmatch(DATE_SHAPE, value):
            return "there is no such day"
        return "it is not YYYY-MM-DD"
    day_time = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
    if re.fullmatch(DATE_SHAPE, value):
        return "it is a day without a time"
    if re.fullmatch(day_time + r"(:\d{2}(\.\d+)?)?", value):
        return "it has no UTC offset (Z or +01:00), so the instant it names is not known"
    if re.fullmatch(day_time + r"(Z|[+-]\d{2}(:?\d{2})?)", value):
        return "it has no seconds (HH:MM:SS)"
    if re.fullmatch(TS_SHAPE, value):
        return "there is no such date or time"
    return "it is not ISO 8601 (YYYY-MM-DDTHH:MM:SS[.fff] then Z or the offset, e.g. +01:00)"


def check_times(what: str, rows: pl.DataFrame, columns: list[str]) -> None:
    """Refuse rows (with `_source`, `_row`) whose time `columns` do not parse: SourceError naming
    the first one's file, line, column, value and the rule, and how many there are."""
    from pipelines.sources.errors import SourceError

    for column in columns:
        bad = rows.filter(parsed_time(column).is_null())
        if bad.is_empty():
            continue
        first = bad.row(0, named=True)
        value = first[column]
        raise SourceError(
            f"{what}: {first['_source']} line {first['_row']}: {column} {shown(value)} "
            f"{RULE[TIME_COLUMNS[column]]}: {why_not_time(column, value)} ({len(bad)} such "
            f"row(s) in {bad['_source'].n_unique()} file(s))"
        )
