"""Reading CSV files (file_drop and the sample format): what a bad file is called, values cut in
messages, dates and timestamps checked and never coerced. Every bad file is written here."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.errors import SHOWN_CHARS, shown
from pipelines.sources import build_connector
from pipelines.sources.common import COLUMNS, parsed_time
from pipelines.sources.errors import SourceError
from pipelines.sources.sample import SampleConnector, SampleSettings

from .conftest import window
from .test_file_drop import FLEET, POOL, fetch, mining, write

FX = "date,currency,usd_per_unit\n"
PRICES = "ts,bidding_zone,price_per_mwh,currency\n"


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def refused(folder: Path, table="fx_rates_daily", column="date", start="2024-04-01") -> str:
    end = (date.fromisoformat(start) + timedelta(days=1)).isoformat()
    with pytest.raises(SourceError) as e:
        fetch(folder, table, start, end, column)
    return str(e.value)


def sample(folder: Path, table: str, start: str, end: str, column="date") -> pl.DataFrame:
    connector = SampleConnector(SampleSettings(data_dir=folder))
    return connector.fetch(table, window(start, end), column)


def sample_refused(folder: Path, table="fx_rates_daily", column="date") -> str:
    with pytest.raises(SourceError) as e:
        sample(folder, table, "2024-04-01", "2024-04-02", column)
    return str(e.value)


# --- a field too long for the csv module ------------------------------------------------------


def test_a_10_mb_field_names_the_file_and_line(tmp_path):
    path = write(
        tmp_path, "fx.csv", FX + "2024-04-01,EUR,1.07\n2024-04-01,SEK," + "9" * 10**7 + "\n"
    )
    message = refused(tmp_path)
    assert f"{path}: line 3: a field is longer than 131,072 characters" in message
    assert "_csv.Error" not in message and len(message) < 400


def test_a_quote_left_open_names_the_line_it_opened_on(tmp_path):
    rows = "".join(f"2024-04-01,X{i},{'1' * 1000}\n" for i in range(200))
    path = write(tmp_path, "fx.csv", FX + '2024-04-01,"EUR,1.07\n' + rows)
    message = refused(tmp_path)
    assert (
        f"{path}: lines 2 to " in message and "a quote opened on line 2 and not closed?" in message
    )


def test_the_sample_format_names_the_file_and_line_too(tmp_path):
    path = write(tmp_path, "fx_rates_daily.csv", FX + "2024-04-01,EUR," + "9" * 200_000 + "\n")
    assert f"{path}: line 2: a field is longer than" in sample_refused(tmp_path)


# --- long values are cut in messages ----------------------------------------------------------


def test_shown_cuts_long_values_with_an_ellipsis_and_the_length():
    assert shown("2024-04-01x") == "'2024-04-01x'"
    long = "x" * 100_000
    assert shown(long) == repr("x" * SHOWN_CHARS) + "… (100,000 characters)"


def test_a_100_kb_date_is_cut_in_the_message(tmp_path):
    value = "2024-04-01" + "x" * 100_000
    path = write(tmp_path, "fx.csv", FX + f"{value},EUR,1.07\n")
    message = refused(tmp_path)
    assert f"{path} line 2: date '2024-04-01xxx" in message
    assert "… (100,010 characters) is not a day, YYYY-MM-DD" in message
    assert len(message) < 500


def test_a_100_kb_column_name_is_cut_in_the_message(tmp_path):
    path = write(tmp_path, "fx.csv", "date,currency," + "c" * 100_000 + "\n2024-04-01,EUR,1\n")
    message = refused(tmp_path)
    assert str(path) in message and "unexpected column(s) ['ccc" in message
    assert "… (100,000 characters)" in message and len(message) < 500


def test_100_kb_pool_values_are_cut_in_the_message(tmp_path):
    write(tmp_path, "fleet_x.csv", FLEET)
    pool = write(tmp_path, "pool_x.csv", POOL + "2024-04-02,lulea-a" + "a" * 100_000 + ",1\n")
    with pytest.raises(SourceError) as e:
        mining(tmp_path)
    assert f"{pool} line 10: unknown sub-account 'lulea-aaaa" in str(e.value)
    assert "… (100,007 characters)" in str(e.value) and len(str(e.value)) < 800


def test_100_kb_earnings_are_cut_in_the_message(tmp_path):
    write(tmp_path, "fleet_x.csv", FLEET)
    bad = POOL.replace("2024-04-02,rockdale,2.90000000", "2024-04-02,rockdale,2.9" + "x" * 100_000)
    pool = write(tmp_path, "pool_x.csv", bad)
    with pytest.raises(SourceError) as e:
        mining(tmp_path)
    message = str(e.value)
    assert f"{pool} line 9: earnings_btc '2.9xxx" in message
    assert "… (100,003 characters) is not a number of BTC" in message and len(message) < 500


# --- a file that is not UTF-8 CSV text is named as what it is ---------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ((FX + "2024-04-01,EUR,1.07\n").encode("utf-16"), "is not UTF-8 text (looks like UTF-16"),
        (
            (FX + "2024-04-01,EUR,1.07\n").encode("utf-16-le"),
            "is not UTF-8 text (looks like UTF-16",
        ),
        (
            (FX + "2024-04-01,EUR,1.07\n").encode("utf-16-be"),
            "is not UTF-8 text (looks like UTF-16",
        ),
        (gzip.compress((FX + "2024-04-01,EUR,1.07\n").encode()), "is gzip-compressed"),
        (b"PK\x03\x04\x14\x00\x00\x00", "is a zip archive (an Excel .xlsx workbook is one)"),
    ],
    ids=["utf-16", "utf-16-le-no-bom", "utf-16-be-no-bom", "gzip", "xlsx"],
)
def test_a_file_that_is_not_utf8_text_is_named_as_what_it_is(tmp_path, data, expected):
    path = write_bytes(tmp_path, "fx.csv", data)
    message = refused(tmp_path)
    assert f"{path} {expected}" in message
    assert "truncated" not in message


def test_latin1_names_the_line_of_the_first_byte_that_is_not_utf8(tmp_path):
    data = (FX + "2024-04-01,EUR,1.07\n2024-04-01,SEK,0.09 ¤\n").encode("latin-1")
    path = write_bytes(tmp_path, "fx.csv", data)
    message = refused(tmp_path)
    assert f"{path} is not UTF-8 text: byte 0xa4 on line 3 is not UTF-8" in message


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    write_bytes(tmp_path, "fx.csv", (FX + "2024-04-01,EUR,1.07\n").encode("utf-8-sig"))
    frame = fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")
    assert frame.select("date", "currency", "_row").rows() == [("2024-04-01", "EUR", 2)]


def test_cr_line_endings_are_read_with_their_line_numbers(tmp_path):
    """Decision: CR-only files (classic Mac, Excel's "CSV (Macintosh)") are read, as Python's
    csv module reads them; the lines are numbered as in the file."""
    text = FX + "2024-04-01,EUR,1.07\n2024-04-01,SEK,0.0935\n2024-04-02,NOK,x\n"
    path = write_bytes(tmp_path, "fx.csv", text.replace("\n", "\r").encode())
    frame = fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-03")
    assert frame.rows() == [
        ("2024-04-01", "EUR", "1.07", str(path), 2),
        ("2024-04-01", "SEK", "0.0935", str(path), 3),
        ("2024-04-02", "NOK", "x", str(path), 4),
    ]
    write_bytes(tmp_path, "fx_rates_daily.csv", text.replace("\n", "\r").encode())
    assert sample(tmp_path, "fx_rates_daily", "2024-04-02", "2024-04-03")["_row"].to_list() == [4]


def test_cr_line_endings_cut_short_are_truncated(tmp_path):
    path = write_bytes(tmp_path, "fx.csv", (FX + "2024-04-01,EUR,1.0").replace("\n", "\r").encode())
    assert f"{path}: truncated: line 2, the last, has no line end" in refused(tmp_path)


def test_cr_line_endings_with_a_bad_day_name_the_line(tmp_path):
    text = FX + "2024-04-01,EUR,1.07\n2024-04-01x,SEK,0.09\n"
    path = write_bytes(tmp_path, "fx.csv", text.replace("\n", "\r").encode())
    assert f"{path} line 3: date '2024-04-01x' is not a day" in refused(tmp_path)


# --- dates: exactly YYYY-MM-DD --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-04-01x", "it has more than the day (text after YYYY-MM-DD)"),
        ("2024-04-01T00:00:00", "it has more than the day (text after YYYY-MM-DD)"),
        ("2024-04-31", "there is no such day"),
        ("2024-4-1", "it is not YYYY-MM-DD"),
        ("01/04/2024", "it is not YYYY-MM-DD"),
    ],
)
def test_a_date_that_is_not_exactly_a_day_is_refused(tmp_path, value, reason):
    text = FX + f"2024-04-01,EUR,1.07\n{value},SEK,0.09\n"
    drop = write(tmp_path / "drop", "fx.csv", text)
    message = refused(tmp_path / "drop")
    assert f"{drop} line 3: date {value!r} is not a day, YYYY-MM-DD: {reason}" in message
    path = write(tmp_path / "sample", "fx_rates_daily.csv", text)
    message = sample_refused(tmp_path / "sample")
    assert message.startswith(f"sample (fx_rates_daily): {path} line 3: date {value!r}")
    assert f"is not a day, YYYY-MM-DD: {reason}" in message


def test_the_sample_refuses_a_bad_date_outside_the_window_too(tmp_path):
    """Today's sample silently loaded 2024-04-10x as 2024-04-10 (DuckDB's cast stops at the day);
    a date that does not parse cannot be placed in a window, so any such row stops the read."""
    path = write(tmp_path, "fx_rates_daily.csv", FX + "2024-04-01,EUR,1.07\n2024-04-10x,EUR,1\n")
    message = sample_refused(tmp_path)
    assert f"{path} line 3: date '2024-04-10x' is not a day" in message
    assert "(1 such row(s) in 1 file(s))" in message


def test_the_sample_keeps_the_window_rows_of_good_dates(tmp_path):
    path = write(tmp_path, "fx_rates_daily.csv", FX + "2024-03-31,EUR,1.08\n2024-04-01,EUR,1.07\n")
    frame = sample(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")
    assert frame.select("date", "_source", "_row").rows() == [("2024-04-01", str(path), 3)]


# --- timestamps: ISO 8601 with seconds and the UTC offset -------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-04-01T05:00:00", "it has no UTC offset (Z or +01:00)"),
        ("2024-04-01 05:00", "it has no UTC offset (Z or +01:00)"),
        ("2024-04-01T05:00:00.000", "it has no UTC offset (Z or +01:00)"),
        ("2024-04-01", "it is a day without a time"),
        ("2024-04-01T05:00Z", "it has no seconds (HH:MM:SS)"),
        ("2024-04-01T25:00:00Z", "there is no such date or time"),
        ("2024-04-01T05:00:00Zx", "it is not ISO 8601"),
    ],
)
def test_a_timestamp_without_its_offset_is_refused(tmp_path, value, reason):
    good = "".join(f"2024-04-01T{h:02d}:00:00Z,SE1,1,EUR\n" for h in range(5))
    text = PRICES + good + f"{value},SE1,1,EUR\n"
    drop = write(tmp_path / "drop", "p.csv", text)
    message = refused(tmp_path / "drop", "energy_prices_hourly", "ts")
    assert f"{drop} line 7: ts {value!r} is not a UTC timestamp with its offset" in message
    assert reason in message
    path = write(tmp_path / "sample", "energy_prices_hourly.csv", text)
    message = sample_refused(tmp_path / "sample", "energy_prices_hourly", "ts")
    assert f"{path} line 7: ts {value!r} is not a UTC timestamp with its offset" in message
    assert reason in message


ACCEPTED = [
    ("2024-04-01T00:00:00.000Z", datetime(2024, 4, 1, tzinfo=UTC)),
    ("2024-04-01T00:00:00Z", datetime(2024, 4, 1, tzinfo=UTC)),
    ("2024-04-01 02:00:00.5+02:00", datetime(2024, 4, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("2024-04-01T01:00:00.123456+01", datetime(2024, 4, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("2024-03-31T19:30:00-0430", datetime(2024, 4, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("value", "instant"), ACCEPTED)
def test_iso_8601_with_fractions_and_z_is_accepted(tmp_path, value, instant):
    text = PRICES + f"{value},SE1,1,EUR\n"
    write(tmp_path / "drop", "p.csv", text)
    frame = fetch(tmp_path / "drop", "energy_prices_hourly", "2024-04-01", "2024-04-02", "ts")
    assert frame["ts"].to_list() == [value]  # the text is kept; the warehouse casts it
    write(tmp_path / "sample", "energy_prices_hourly.csv", text)
    frame = sample(tmp_path / "sample", "energy_prices_hourly", "2024-04-01", "2024-04-02", "ts")
    assert frame["ts"].to_list() == [value]
    # the connector and the warehouse's cast read the same instant
    parsed = pl.DataFrame({"ts": [value]}).select(parsed_time("ts"))["ts"][0]
    assert parsed == instant
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    assert con.execute("SELECT TRY_CAST(? AS TIMESTAMPTZ)", [value]).fetchone()[0] == instant


def test_the_sample_places_a_timestamp_by_its_utc_day(tmp_path):
    text = PRICES + "2024-04-02T00:30:00+01:00,SE1,1,EUR\n2024-04-02T01:30:00+01:00,SE1,2,EUR\n"
    write(tmp_path, "energy_prices_hourly.csv", text)
    day_before = sample(tmp_path, "energy_prices_hourly", "2024-04-01", "2024-04-02", "ts")
    assert day_before["price_per_mwh"].to_list() == ["1"]  # 2024-04-01T23:30Z
    same_day = sample(tmp_path, "energy_prices_hourly", "2024-04-02", "2024-04-03", "ts")
    assert same_day["price_per_mwh"].to_list() == ["2"]


def test_the_embedded_sample_still_reads():
    frame = SampleConnector().fetch(
        "energy_prices_hourly", window("2024-04-02", "2024-04-03"), "ts"
    )
    assert frame.height > 0 and frame["ts"].str.starts_with("2024-04-02").all()


# --- machine telemetry (telemetry_drop) -----------------------------------------------------

TELEMETRY = ",".join(COLUMNS["miner_telemetry"]) + "\n"


def telemetry_row(ts: str, machine="m1") -> str:
    return f"{machine},{ts},se-lulea,S19,100.0,3250,70.0,4200,ok\n"


def telemetry(folder: Path, glob="telemetry_*.csv") -> str:
    settings = {"folder": str(folder), "glob": glob}
    connector = build_connector("telemetry_drop", settings, "miner_telemetry", "t")
    return connector.fetch("miner_telemetry", window("2024-04-01", "2024-04-02"), "ts")


def test_telemetry_csv_timestamps_as_duckdb_writes_them_are_read(tmp_path):
    rows = [telemetry_row("2024-04-01 00:00:00+00"), telemetry_row("2024-04-01T00:10:00.000Z")]
    write(tmp_path, "telemetry_se-lulea_2024-04-01.csv", TELEMETRY + "".join(rows))
    assert "read_csv" in str(telemetry(tmp_path))


def test_telemetry_csv_timestamp_without_offset_names_file_line_and_value(tmp_path):
    rows = [telemetry_row(f"2024-04-01T00:{m}0:00Z") for m in range(3)]
    rows.append(telemetry_row("2024-04-01T00:30:00"))
    path = write(tmp_path, "telemetry_se-lulea_2024-04-01.csv", TELEMETRY + "".join(rows))
    with pytest.raises(SourceError) as e:
        telemetry(tmp_path)
    message = str(e.value)
    assert f"{path} line 5: ts '2024-04-01T00:30:00' is not a UTC timestamp" in message
    assert "it has no UTC offset" in message


def test_telemetry_parquet_timestamp_without_time_zone_is_refused(tmp_path):
    frame = pl.DataFrame(
        {c: ["x"] for c in COLUMNS["miner_telemetry"] if c != "ts"} | {"ts": [datetime(2024, 4, 1)]}
    )
    path = tmp_path / "telemetry_se-lulea_2024-04-01.parquet"
    frame.write_parquet(path)
    with pytest.raises(SourceError, match=rf"{path}: column ts is a timestamp without a time zone"):
        telemetry(tmp_path, "telemetry_*.parquet")


def test_telemetry_csv_in_utf16_is_named(tmp_path):
    data = (TELEMETRY + telemetry_row("2024-04-01T00:00:00Z")).encode("utf-16")
    path = write_bytes(tmp_path, "telemetry_se-lulea_2024-04-01.csv", data)
    with pytest.raises(SourceError, match=rf"{path} is not UTF-8 text \(looks like UTF-16"):
        telemetry(tmp_path)
