"""Euro foreign exchange reference rates from the ECB Data Portal (key-free), -> fx_rates_daily.

`GET {base_url}/service/data/EXR/D.USD+NOK+SEK.EUR.SP00.A?startPeriod=<first day>&endPeriod=<last
day>&format=csvdata` answers CSV with one row per currency and publication day (`CURRENCY`,
`TIME_PERIOD`, `OBS_VALUE` = units of the currency per euro). One request per window. USD per
unit: EUR = EURUSD; any other currency = EURUSD / EURXXX. No rows on weekends and TARGET
holidays is normal (the ECB answers 404 "No results found" for a window without any).
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, Field

from pipelines.batch import Window
from pipelines.sources.common import empty, finish
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings


class EcbSettings(HttpSettings):
    base_url: str = "https://data-api.ecb.europa.eu"
    currencies: list[str] = Field(["EUR", "NOK", "SEK"], min_length=1)


class EcbConnector:
    Settings: ClassVar[type[BaseModel]] = EcbSettings
    tables: ClassVar[set[str]] = {"fx_rates_daily"}
    name = "ecb (fx_rates_daily)"

    def __init__(self, settings: EcbSettings):
        self.settings = settings
        self.http = HttpClient(self.name, settings)

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        asked = sorted({"USD", *self.settings.currencies} - {"EUR"})
        text, shown, status = self.http.get_text(
            f"/service/data/EXR/D.{'+'.join(asked)}.EUR.SP00.A",
            {
                "startPeriod": window.start.isoformat(),
                "endPeriod": (window.end - timedelta(days=1)).isoformat(),
                "format": "csvdata",
            },
            ok_statuses=frozenset({404}),
        )
        if status == 404 or not text.strip():
            return empty(table)  # no publication day in the window
        try:
            raw = pl.read_csv(io.StringIO(text), infer_schema=False).with_row_index("_row", 2)
            rates = raw.select(
                pl.col("TIME_PERIOD").alias("date"),
                pl.col("CURRENCY").alias("currency"),
                pl.col("OBS_VALUE").cast(pl.Float64).alias("per_eur"),
                pl.col("_row").cast(pl.Int64),
            )
        except (pl.exceptions.PolarsError, ValueError) as e:
            raise SourceError(
                f"{self.name}: {shown}: not the ECB's csvdata (TIME_PERIOD, CURRENCY, OBS_VALUE):"
                f" {str(e).splitlines()[0]}"
            ) from None
        usd = rates.filter(pl.col("currency") == "USD").select(
            "date", pl.col("per_eur").alias("usd_per_eur")
        )
        missing = rates.join(usd, on="date", how="anti")
        if not missing.is_empty():
            raise SourceError(
                f"{self.name}: {shown}: no USD rate on {missing['date'][0]} (row "
                f"{missing['_row'][0]}): cannot convert to USD"
            )
        joined = rates.join(usd, on="date")
        eur = usd.join(rates.filter(pl.col("currency") == "USD").select("date", "_row"), on="date")
        rows = [
            eur.select(
                "date",
                pl.lit("EUR").alias("currency"),
                pl.col("usd_per_eur").alias("usd_per_unit"),
                "_row",
            ),
            joined.filter(pl.col("currency").is_in(self.settings.currencies)).select(
                "date",
                "currency",
                (pl.col("usd_per_eur") / pl.col("per_eur")).alias("usd_per_unit"),
                "_row",
            ),
        ]
        out = pl.concat(rows).filter(
            pl.col("currency").is_in(self.settings.currencies)
            & pl.col("date").is_between(
                pl.lit(window.start.isoformat()), pl.lit(window.end.isoformat()), closed="left"
            )
        )
        return finish(
            table, out.with_columns(pl.lit(shown).alias("_source")).sort("date", "currency")
        )
