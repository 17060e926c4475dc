"""ERCOT hub prices from ERCOT's Public API (api.ercot.com), -> energy_prices_hourly.

`GET {base_url}/np6-905-cd/spp_node_zone_hub?deliveryDateFrom=&deliveryDateTo=&settlementPoint=
HB_WEST&page=&size=` (real-time settlement point prices, 15-minute) or `/np4-190-cd/
dam_stlmnt_pnt_prices` (day-ahead, hourly) answer `{"_meta": {"totalPages", ...}, "fields":
[{"name"}...], "data": [[...], ...]}`, paged. Times are Central Prevailing Time: `deliveryDate`,
`deliveryHour` / `hourEnding` (1-24, hour ending), `deliveryInterval` (1-4) and `DSTFlag` (true on
the repeated hour of the fall-back day; the spring-forward day has no hour ending 03). They are
turned into UTC interval starts and averaged into UTC hours; an hour lacking one of its four
intervals (real time) is counted in `missing_intervals`, which the contract quarantines. Zone names
are `ERCOT_<point>`.

The API needs a subscription key (header `Ocp-Apim-Subscription-Key`) and an ID token from
ERCOT's B2C sign-in (`POST token_url` with the API account's username and password): all three
come from environment variables named in the settings and never appear in errors or `_source`.
Requests: 1 token + (pages per hub) per window; a UTC day spans two ERCOT delivery days.

Why not gridstatus: its ERCOT API client hard-codes `https://api.ercot.com/...` as module
constants (no base URL to point at a test server) and brings pandas, plotly, pdfplumber, etc.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

import polars as pl
from pydantic import BaseModel, Field, StringConstraints

from pipelines.batch import Window
from pipelines.sources.common import empty, finish, hourly_means
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings

CLIENT_ID = "fec253ea-0d06-4272-a5e6-b478baeecd70"  # ERCOT's public API client, as documented
TOKEN_URL = "https://ercotb2c.b2clogin.com/ercotb2c.onmicrosoft.com/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token"
REPORTS = {
    "real_time": "/np6-905-cd/spp_node_zone_hub",
    "day_ahead": "/np4-190-cd/dam_stlmnt_pnt_prices",
}


class ErcotSettings(HttpSettings):
    base_url: str = "https://api.ercot.com/api/public-reports"
    token_url: str = TOKEN_URL
    zones: list[Annotated[str, StringConstraints(pattern=r"^ERCOT_[A-Z0-9_]+$")]] = Field(
        min_length=1, description="ERCOT_<settlement point>, e.g. ERCOT_HB_WEST"
    )
    market: Literal["real_time", "day_ahead"] = "real_time"
    username_env: str = "ERCOT_API_USERNAME"
    password_env: str = "ERCOT_API_PASSWORD"
    subscription_key_env: str = "ERCOT_API_SUBSCRIPTION_KEY"
    page_size: int = Field(10000, ge=1)
    min_interval_s: float = 0.6  # the API allows 30 requests a minute


class ErcotConnector:
    Settings: ClassVar[type[BaseModel]] = ErcotSettings
    tables: ClassVar[set[str]] = {"energy_prices_hourly"}
    name = "ercot (energy_prices_hourly)"

    def __init__(self, settings: ErcotSettings):
        self.settings = settings

    def _env(self, name: str, what: str) -> str:
        value = os.environ.get(name, "")
        if not value:
            raise SourceError(f"{self.name}: environment variable {name} ({what}) is not set")
        return value

    def _client(self) -> HttpClient:
        s = self.settings
        username = self._env(s.username_env, "ERCOT API username")
        password = self._env(s.password_env, "ERCOT API password")
        key = self._env(s.subscription_key_env, "ERCOT API subscription key")
        http = HttpClient(self.name, s, secrets=(username, password, key))
        response, shown = http.request(
            "POST",
            s.token_url,
            data={
                "grant_type": "password",
                "username": username,
                "password": password,
                "response_type": "id_token",
                "scope": f"openid {CLIENT_ID} offline_access",
                "client_id": CLIENT_ID,
            },
        )
        token = (http.decode_json(response, shown) or {}).get("id_token")
        if not token:
            raise SourceError(f"{self.name}: {shown}: sign-in answered without an id_token")
        http.secrets += (token,)
        http.session.headers.update(
            {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": key}
        )
        return http

    def _rows(self, http: HttpClient, point: str, window: Window) -> pl.DataFrame:
        params = {
            "deliveryDateFrom": (window.start - timedelta(days=1)).isoformat(),
            "deliveryDateTo": window.end.isoformat(),
            "settlementPoint": point,
            "size": self.settings.page_size,
        }
        rows, sources = [], []
        for body, shown in http.pages(REPORTS[self.settings.market], params):
            try:
                names = [f["name"] for f in body["fields"]]
                data = body.get("data") or []
            except (KeyError, TypeError):
                raise SourceError(f"{self.name}: {shown}: no 'fields' in the answer") from None
            rows += [dict(zip(names, r, strict=False)) for r in data]
            sources += [shown] * len(data)
        if not rows:
            raise SourceError(f"{self.name}: {shown}: no prices for settlement point {point}")
        frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
            pl.Series("_source", sources), pl.int_range(1, pl.len() + 1).alias("_row")
        )
        if self.settings.market == "real_time":
            hour = pl.col("deliveryHour").cast(pl.Int64)
            minutes = (pl.col("deliveryInterval").cast(pl.Int64) - 1) * 15
            resolution = 15
        else:
            hour = pl.col("hourEnding").cast(pl.Utf8).str.slice(0, 2).cast(pl.Int64)
            minutes = pl.lit(0)
            resolution = 60
        dst = pl.col("DSTFlag").cast(pl.Utf8).str.to_lowercase().is_in(["true", "y"])
        local = pl.col("deliveryDate").cast(pl.Utf8).str.to_date().cast(
            pl.Datetime("us")
        ) + pl.duration(hours=hour - 1, minutes=minutes)
        return frame.select(
            local.dt.replace_time_zone(
                "America/Chicago",
                ambiguous=pl.when(dst).then(pl.lit("latest")).otherwise(pl.lit("earliest")),
                non_existent="null",
            )
            .dt.convert_time_zone("UTC")
            .alias("ts"),
            pl.lit(f"ERCOT_{point}").alias("bidding_zone"),
            pl.col("settlementPointPrice").cast(pl.Float64).alias("price_per_mwh"),
            pl.lit("USD").alias("currency"),
            pl.lit(resolution, pl.Int64).alias("resolution_min"),
            "_source",
            "_row",
        )

    def zones_served(self) -> set[str]:
        """The zones this connector loads: its `zones` (ERCOT_<settlement point>)."""
        return set(self.settings.zones)

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        http = self._client()
        frames = [self._rows(http, z.removeprefix("ERCOT_"), window) for z in self.settings.zones]
        hourly = hourly_means(pl.concat(frames), window, self.name)
        return finish(table, hourly) if not hourly.is_empty() else empty(table)
