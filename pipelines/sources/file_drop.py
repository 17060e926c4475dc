"""Drop files: CSV exports put in a folder, -> any raw table (connector `file_drop`).

Settings (in assets/sources.yaml, one entry per table, usually one folder per table):
`folder` (relative paths resolve against the project directory), `glob` (default `*.csv`, the
files of a generic table), and for mining_output_daily `pool_glob` (default `pool_*.csv`),
`fleet_glob` (default `fleet_*.csv`) and `subaccounts` (pool sub-account -> site_id).

- Generic tables (btc_network_daily, energy_prices_hourly, fx_rates_daily,
  gpu_market_prices_daily, gpu_usage_daily): each file's header is the contract's column names,
  as in pipelines/sample_data/<table>.csv (any order, case and surrounding spaces ignored).
  gpu_market_prices_daily may leave out `gpu_variant` and the quartiles (optional in the
  contract). GPU names are normalised with vastai.normalise_gpu ("H100 SXM5 80GB" -> H100, SXM);
  a gpu_variant given in the file is kept; a name it does not know is kept as written.
- mining_output_daily joins a pool's daily earnings export (`date,subaccount,earnings_btc`) with
  the fleet software's export (`date,site_id,hashrate_th_s,uptime_pct,energy_mwh`): btc_mined is
  the sum of the earnings of the site's sub-accounts. A site-day in one export but not the other
  is refused, except a fleet row with hashrate_th_s 0 (an outage) without pool earnings, which
  mined 0 BTC. A mining row's `_source`/`_row` is its fleet line; site_ids the fleet export
  names are left to the contract's `site_declared` rule (the row is quarantined with that line).

Rules: values stay text (the warehouse casts and validates them against the contract). A header
that is not the expected one is refused (SourceError naming the file and the missing and
unexpected columns); a column named with another unit than the expected one (`price_per_kwh` for
`price_per_mwh`, `energy_kwh`, `hashrate_ph_s`, `earnings_sats`, ...) is refused naming the file,
the column and the expected unit: drop files are never converted. A `date` must be exactly
YYYY-MM-DD and a `ts` ISO 8601 with seconds (a fraction allowed) and its UTC offset (`Z`, `+01`,
`+0100` or `+01:00`), or the file, line, value and why are named. A file must be whole UTF-8 CSV
text: gzip, zip/xlsx, UTF-16 and other encodings are refused naming what they are (common.
csv_bytes); CR-only line endings are read. Values quoted in messages are cut (common.shown).

Late corrections: every run re-reads the whole folder. When several files hold the same day of
the same thing (a table's key with its time cut to the UTC day; a pool's (date, subaccount); a
fleet's (date, site_id)), the file whose NAME sorts last supplies that day, and the others' rows
of it are ignored: name exports by export date or time (`pool_2024-04-02.csv`, then
`pool_2024-04-02_corrected.csv` or `pool_2024-04-03T0600Z.csv`). A key twice in one file is left
to the contract's `key_unique` rule (which stops the write), except a pool sub-account twice on
one day in one file, which would be summed and is refused here.

A folder with no matching file is an error (the export has not arrived); files without rows in
the window give no rows (the contract's row-count rule then decides).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.batch import Window
from pipelines.errors import cut, shown, shown_list
from pipelines.settings import PROJECT_DIR
from pipelines.sources.common import (
    COLUMNS,
    LINEAGE,
    OPTIONAL,
    check_times,
    csv_bytes,
    empty,
    finish,
    utc_day,
)
from pipelines.sources.errors import SourceError
from pipelines.sources.vastai import normalise_gpu

MINING = "mining_output_daily"
POOL_COLUMNS = ["date", "subaccount", "earnings_btc"]
FLEET_COLUMNS = ["date", "site_id", "hashrate_th_s", "uptime_pct", "energy_mwh"]
# What one file's rows of a UTC day are "of": the table's key without its time column. The
# newest file (by name) holding a (day, *these) supplies all of its rows.
ENTITY: dict[str, list[str]] = {
    "btc_network_daily": [],
    "energy_prices_hourly": ["bidding_zone"],
    "fx_rates_daily": ["currency"],
    "gpu_market_prices_daily": ["gpu_model", "gpu_variant", "lease_type", "source"],
    "gpu_usage_daily": ["site_id", "gpu_model"],
}
# The unit each unit-carrying column is expected in (as in the contracts).
EXPECTED_UNIT = {
    "hashrate_eh_s": "EH/s", "hashrate_th_s": "TH/s", "subsidy_btc": "BTC", "fees_btc": "BTC",
    "price_usd": "USD", "btc_mined": "BTC", "earnings_btc": "BTC", "uptime_pct": "% (0-100)",
    "energy_mwh": "MWh", "price_per_mwh": "the currency column's currency per MWh",
    "usd_per_unit": "USD per currency unit", "price_usd_per_gpu_hour": "USD per GPU-hour",
    "p25_usd_per_gpu_hour": "USD per GPU-hour", "p75_usd_per_gpu_hour": "USD per GPU-hour",
    "gpu_hours_sold": "GPU-hours", "revenue_usd": "USD",
}  # fmt: skip
# Unit words in column names (hashrates written h_s become hs first).
UNITS = {
    "wh": "Wh", "kwh": "kWh", "mwh": "MWh", "gwh": "GWh", "twh": "TWh",
    "kw": "kW", "mw": "MW", "gw": "GW",
    "hs": "H/s", "khs": "kH/s", "mhs": "MH/s", "ghs": "GH/s", "ths": "TH/s", "phs": "PH/s",
    "ehs": "EH/s", "zhs": "ZH/s",
    "usd": "USD", "eur": "EUR", "nok": "NOK", "sek": "SEK", "gbp": "GBP", "cad": "CAD",
    "chf": "CHF", "dkk": "DKK", "btc": "BTC", "mbtc": "mBTC", "sat": "sat", "sats": "sat",
    "satoshi": "sat", "satoshis": "sat",
    "pct": "%", "percent": "%", "ratio": "ratio", "frac": "fraction", "fraction": "fraction",
    "share": "fraction", "bps": "bp",
    "hour": "hour", "hours": "hours", "hr": "hour", "hrs": "hours", "minute": "minute",
    "minutes": "minutes", "min": "minute", "mins": "minutes", "second": "second",
    "seconds": "seconds", "day": "day", "days": "days",
}  # fmt: skip


class DropFolderSettings(BaseModel):
    """A drop folder (relative paths resolve against the project directory)."""

    model_config = ConfigDict(extra="forbid")
    folder: Path = Field(description="the drop folder; relative to the project directory")

    @field_validator("folder")
    @classmethod
    def _absolute(cls, folder: Path) -> Path:
        folder = folder.expanduser()
        return folder if folder.is_absolute() else PROJECT_DIR / folder


class FileDropSettings(DropFolderSettings):
    glob: str = Field("*.csv", description="files of a generic table")
    pool_glob: str = Field("pool_*.csv", description="mining_output_daily: pool earnings exports")
    fleet_glob: str = Field("fleet_*.csv", description="mining_output_daily: fleet exports")
    subaccounts: dict[str, str] = Field(
        default_factory=dict, description="mining_output_daily: pool sub-account -> site_id"
    )


def existing_folder(settings: DropFolderSettings, what: str) -> Path:
    if not settings.folder.is_dir():
        raise SourceError(f"{what}: drop folder {settings.folder} does not exist")
    return settings.folder


def _matching(folder: Path, pattern: str) -> list[Path]:
    """Files matching `pattern`, in the order that decides corrections: by name (last wins)."""
    return sorted((p for p in folder.glob(pattern) if p.is_file()), key=lambda p: (p.name, p))


def drop_files(settings: FileDropSettings, table: str | None = None) -> list[Path]:
    """Every file the connector reads for `table` (without: for any table), sorted by name.

    For a sensor: a file's path with its mtime and size is its version; a new or changed file
    means re-running the days it holds (a run always re-reads the whole folder).
    """
    folder = existing_folder(settings, f"file_drop ({table or 'any table'})")
    if table == MINING:
        patterns = [settings.pool_glob, settings.fleet_glob]
    elif table is not None:
        patterns = [settings.glob]
    else:
        patterns = [settings.glob, settings.pool_glob, settings.fleet_glob]
    files = {p for pattern in patterns for p in _matching(folder, pattern)}
    return sorted(files, key=lambda p: (p.name, p))


def _unit_words(name: str) -> tuple[tuple[str, ...], list[str]]:
    """(the name's words that are not units, its unit words) of a column name."""
    words = re.sub(r"_([kmgtpez]?h)_s(?=_|$)", r"_\1s", name).split("_")
    stem = tuple(w for w in words if w not in UNITS and w != "per")
    units = [w for w in words if w in UNITS or w == "per"]
    while units and units[0] == "per":
        units.pop(0)
    while units and units[-1] == "per":
        units.pop()
    return stem, units


def check_header(what: str, path: Path, header: list[str], expected: list[str], optional=()):
    """Refuse a header that is not `expected` (bar `optional` columns), naming wrong units."""
    missing = [c for c in expected if c not in header and c not in optional]
    unexpected = [c for c in header if c not in expected]
    if not (missing or unexpected):
        return
    problems = []
    for column in list(unexpected):
        stem, units = _unit_words(column)
        target = next(
            (c for c in [*missing, *optional] if c not in header and _unit_words(c)[0] == stem),
            None,
        )
        if target is None:
            continue
        expected_unit = EXPECTED_UNIT.get(target, " ".join(UNITS.get(u, u) for u in target))
        given = " ".join(UNITS.get(u, u) for u in units)
        problems.append(
            f"column {shown(column)} is "
            + (f"in {given}" if given else "without a unit")
            + f": expected {target!r} in {expected_unit}"
        )
        unexpected.remove(column)
        if target in missing:
            missing.remove(target)
    if problems:
        problems.append("drop files are never converted: export (or convert) in the expected unit")
    if missing:
        problems.append(f"missing column(s) {shown_list(missing)}")
    if unexpected:
        problems.append(f"unexpected column(s) {shown_list(unexpected)}")
    raise SourceError(
        f"{what}: {path}: wrong header: " + "; ".join(problems)
        + f"; expected the header {','.join(expected)}"
    )  # fmt: skip


def _scan(what: str, path: Path, expected: list[str], optional=()) -> pl.LazyFrame:
    """One file, every value as trimmed text, with `_source` and `_row` (its line number).

    The file is checked whole first (common.csv_bytes: UTF-8 text, not cut short, no ragged
    line), and what was checked is what is read.
    """
    data = csv_bytes(what, path)
    try:
        frame = pl.scan_csv(data, infer_schema=False)
        names = frame.collect_schema().names()
    except pl.exceptions.PolarsError as e:
        raise SourceError(f"{what}: {path}: not a readable CSV file: {cut(str(e))}") from None
    header = [n.strip().lower() for n in names]
    check_header(what, path, header, expected, optional)
    frame = frame.rename(dict(zip(names, header, strict=True)))
    absent = [pl.lit(None, pl.Utf8).alias(c) for c in expected if c not in header]
    return (
        frame.with_row_index("_row", offset=2)  # line numbers: the header is line 1
        .with_columns(pl.col(header).str.strip_chars(), *absent)
        .with_columns(pl.col(c).replace("", None) for c in expected)
        .filter(~pl.all_horizontal(pl.col(expected).is_null()))  # blank lines
        .select(*expected, pl.lit(str(path)).alias("_source"), pl.col("_row").cast(pl.Int64))
    )


def _read(
    what: str, files: list[Path], expected: list[str], time: str, window: Window, optional=()
) -> pl.DataFrame:
    """The files' rows of the window, with `_day` (UTC day) and `_rank` (the file's position).

    A row whose day does not parse stops the read: it cannot be placed in a partition. A `date`
    must be exactly YYYY-MM-DD, a `ts` ISO 8601 with seconds (a fraction allowed) and its UTC
    offset (common.parsed_time): nothing is guessed.
    """
    frames = [
        _scan(what, path, expected, optional).with_columns(pl.lit(rank).alias("_rank"))
        for rank, path in enumerate(files)
    ]
    frame = pl.concat(frames).with_columns(utc_day(time).alias("_day"))
    in_window = (pl.col("_day") >= window.start) & (pl.col("_day") < window.end)
    try:
        rows = frame.filter(pl.col("_day").is_null() | in_window).collect()
    except pl.exceptions.PolarsError as e:
        for path, one in zip(files, frames, strict=True):  # which file it was
            try:
                one.collect()
            except pl.exceptions.PolarsError as e:
                detail = cut(str(e))
                raise SourceError(f"{what}: {path}: not a readable CSV file: {detail}") from None
        raise SourceError(f"{what}: reading {files[0].parent}: {cut(str(e))}") from None
    check_times(what, rows.filter(pl.col("_day").is_null()), [time])
    return rows


def newest(frame: pl.DataFrame, entity: list[str]) -> pl.DataFrame:
    """Keep, for each (UTC day, *entity), the rows of the file whose name sorts last."""
    if frame.is_empty():
        return frame
    latest = pl.col("_rank").max().over("_day", *entity)
    return frame.filter(pl.col("_rank") == latest)


def _sites(subaccounts: list[str]) -> str:
    return ", ".join(sorted(subaccounts))  # mapped ones: named in sources.yaml, not the file


class FileDropConnector:
    """CSV exports dropped in a folder, for any raw table (see the module's docstring)."""

    Settings: ClassVar[type[BaseModel]] = FileDropSettings
    tables: ClassVar[set[str]] = set(COLUMNS) - {"miner_telemetry"}  # telemetry_drop's

    def __init__(self, settings: FileDropSettings):
        self.settings = settings

    def zones_served(self) -> None:
        """None: the zones are whatever the dropped files hold, not declared anywhere, so a
        site's zone cannot be checked against them when the declarations load."""
        return None

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        what = f"file_drop ({table})"
        if table == MINING:
            return self._mining(what, window)
        files = self._files(what, self.settings.glob)
        rows = _read(what, files, COLUMNS[table], partition_column, window, OPTIONAL.get(table, ()))
        if "gpu_model" in rows.columns:
            rows = self._normalise_gpus(rows, table)
        rows = newest(rows, ENTITY[table]).sort("_rank", "_row")
        return finish(table, rows) if not rows.is_empty() else empty(table)

    def _files(self, what: str, pattern: str) -> list[Path]:
        folder = existing_folder(self.settings, what)
        files = _matching(folder, pattern)
        if not files:
            raise SourceError(f"{what}: no drop files matching {pattern!r} in {folder}")
        return files

    @staticmethod
    def _normalise_gpus(rows: pl.DataFrame, table: str) -> pl.DataFrame:
        names = [n for n in rows["gpu_model"].unique().to_list() if n is not None]
        known = {n: gpu for n in names if (gpu := normalise_gpu(n)) is not None}
        model = pl.col("gpu_model").replace({n: m for n, (m, _) in known.items()})
        if table != "gpu_market_prices_daily":
            return rows.with_columns(model)
        variant = pl.col("gpu_model").replace_strict(
            {n: v for n, (_, v) in known.items()}, default=None, return_dtype=pl.Utf8
        )
        return rows.with_columns(model, pl.coalesce(pl.col("gpu_variant"), variant))

    def _mining(self, what: str, window: Window) -> pl.DataFrame:
        settings = self.settings
        pool_files = self._files(what, settings.pool_glob)
        fleet_files = self._files(what, settings.fleet_glob)
        pool = newest(_read(what, pool_files, POOL_COLUMNS, "date", window), ["subaccount"])
        fleet = newest(_read(what, fleet_files, FLEET_COLUMNS, "date", window), ["site_id"])
        if pool.is_empty() and fleet.is_empty():
            return empty(MINING)

        twice = pool.filter(pl.len().over("_day", "subaccount") > 1)
        if not twice.is_empty():
            first = twice.row(0, named=True)
            lines = twice.filter(
                (pl.col("_day") == first["_day"]) & (pl.col("subaccount") == first["subaccount"])
            )["_row"].to_list()
            raise SourceError(
                f"{what}: {first['_source']} lines {lines}: sub-account "
                f"{shown(first['subaccount'])} "
                f"appears more than once on {first['_day']} (its earnings would be summed twice)"
            )
        unknown = pool.filter(~pl.col("subaccount").is_in(list(settings.subaccounts)))
        if not unknown.is_empty():
            first = unknown.row(0, named=True)
            names = sorted(set(unknown["subaccount"].drop_nulls().to_list()))
            raise SourceError(
                f"{what}: {first['_source']} line {first['_row']}: unknown sub-account "
                f"{shown(first['subaccount'])} (unknown in the window: {shown_list(names)}); map "
                "every sub-account "
                f"to its site_id under `subaccounts` (mapped: {sorted(settings.subaccounts)})"
            )
        earnings = pl.col("earnings_btc").cast(pl.Float64, strict=False)
        not_numbers = pool.filter(earnings.is_null())
        if not not_numbers.is_empty():
            first = not_numbers.row(0, named=True)
            raise SourceError(
                f"{what}: {first['_source']} line {first['_row']}: earnings_btc "
                f"{shown(first['earnings_btc'])} is not a number of BTC"
            )
        per_site = (
            pool.with_columns(
                pl.col("subaccount").replace_strict(settings.subaccounts).alias("site_id")
            )
            .group_by("_day", "site_id")
            .agg(
                earnings.sum().alias("btc_mined"),
                pl.col("subaccount").unique().sort().alias("_subaccounts"),
                pl.col("_source").sort_by("_rank", "_row").first().alias("_pool_source"),
                pl.col("_row").sort_by("_rank", "_row").first().alias("_pool_row"),
            )
        )
        joined = fleet.join(per_site, on=["_day", "site_id"], how="full", coalesce=True)

        no_fleet = joined.filter(pl.col("_source").is_null()).sort("_day", "site_id")
        if not no_fleet.is_empty():
            lines = [
                f"{r['_pool_source']} line {r['_pool_row']}: pool earnings of site "
                f"{shown(r['site_id'])} on {r['_day']} (sub-account(s) "
                f"{_sites(r['_subaccounts'])})"
                for r in no_fleet.head(5).iter_rows(named=True)
            ]
            raise SourceError(
                f"{what}: {len(no_fleet)} pool site-day(s) without a fleet row in "
                f"{settings.fleet_glob}: " + "; ".join(lines)
            )
        outage = pl.col("hashrate_th_s").cast(pl.Float64, strict=False) == 0
        no_pool = joined.filter(pl.col("_pool_source").is_null() & ~outage.fill_null(False))
        if not no_pool.is_empty():
            no_pool = no_pool.sort("_day", "site_id")
            mapped = {
                site: sorted(s for s, to in settings.subaccounts.items() if to == site)
                for site in no_pool["site_id"].to_list()
            }
            lines = [
                f"{r['_source']} line {r['_row']}: fleet row of site {shown(r['site_id'])} on "
                f"{r['_day']} (its sub-accounts: {mapped[r['site_id']] or 'none mapped'})"
                for r in no_pool.head(5).iter_rows(named=True)
            ]
            raise SourceError(
                f"{what}: {len(no_pool)} fleet site-day(s) without pool earnings in "
                f"{settings.pool_glob} (only a fleet row with hashrate_th_s 0 may have none): "
                + "; ".join(lines)
            )
        rows = joined.with_columns(pl.col("btc_mined").fill_null(0.0)).sort("_rank", "_row")
        return finish(MINING, rows.select(*COLUMNS[MINING], *LINEAGE))
