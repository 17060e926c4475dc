"""The declarations under `assets/`: infrastructure (sites, fleets), sources and settings.

Each YAML file is checked against a strict model (unknown keys, missing fields and wrong types are
errors), and references between them must lead somewhere: fleets and pool sub-accounts to declared
sites, a site's bidding zone to a price connector that serves it, a source's deps to tables.
Errors name the file, the entry, the field and the value.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from string import Template
from typing import Annotated, Literal

import polars as pl
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.errors import DeclarationError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Positive = Annotated[float, Field(gt=0)]


def _one_line(text: str) -> str:
    if not text or not text.isprintable() or text != text.strip():
        raise ValueError(
            "an identifier is one line of printable text, without control characters (newline, "
            "tab) or spaces around it"
        )
    return text


# Site ids, zones and models: any printable text (quotes and semicolons too: values are bound,
# never written into SQL), but one line, as the exports, drop files and the answer's table need.
Identifier = Annotated[str, AfterValidator(_one_line)]


class IndexLinkedContract(Strict):
    type: Literal["index_linked"]
    adder_usd_per_mwh: float


class FixedContract(Strict):
    type: Literal["fixed"]
    fixed_price_usd_per_mwh: float


class Site(Strict):
    site_id: Identifier
    name: str
    country: str = Field(min_length=2, max_length=2)
    bidding_zone: Identifier
    timezone: str
    grid_capacity_mw: Positive
    pue: Annotated[float, Field(ge=1, le=2)]
    power_contract: Annotated[IndexLinkedContract | FixedContract, Field(discriminator="type")]


class AsicFleet(Strict):
    site_id: Identifier
    model: Identifier
    units: Annotated[int, Field(ge=0)]
    th_per_unit: Positive
    watts_per_unit: Positive
    capex_usd_per_unit: Annotated[float, Field(ge=0)]
    depreciation_years: Positive


class GpuFleet(Strict):
    site_id: Identifier
    gpu_model: Identifier
    gpu_variant: Identifier
    gpus: Annotated[int, Field(ge=0)]
    kw_per_gpu: Positive
    capex_usd_per_gpu: Annotated[float, Field(ge=0)]
    depreciation_years: Positive


class Scenario(Strict):
    scenario: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    btc_price_change_pct: Annotated[float, Field(gt=-100)]
    difficulty_growth_pct_per_month: Annotated[float, Field(gt=-100)]
    gpu_price_change_pct_per_month: Annotated[float, Field(gt=-100)]
    ai_utilisation: Annotated[float, Field(ge=0, le=1)] | None = None
    from_date: date | None = None


class Source(Strict):
    group: str
    description: str
    partition_column: str
    # connector name -> its settings; every listed connector runs and their rows are combined
    connectors: dict[str, dict | None] = Field(min_length=1)
    deps: list[str] = []
    owner: str | None = None
    # too many rows to store (machine telemetry): the rows are validated where they lie and only
    # this table is stored, a rollup of the valid ones by assets/rollups/<stored_as>.sql, written
    # `days_per_write` days per transaction (each holds that many days in memory)
    stored_as: str | None = None
    days_per_write: int = Field(1, ge=1)
    # written site by site: each declared site's rows of a window are read (its connectors read
    # one site's files), validated and committed on their own, so that workers stage sites at
    # once, a transaction holds one site's rows, and one site's missing export holds back no other
    split_by: Literal["site_id"] | None = None
    # a source that can only be read as it is now (an offer book): observed on this cron into
    # today's partition, each observation appended, never backfilled nor run by the daily job
    observe_cron: str | None = None
    # a daily source that also has the day summarised from observations made during it, by
    # assets/observations/<observations>.sql (which reads the observed table)
    observations: str | None = None
    # days before the daily run's day that the source may still revise (late data, corrected
    # rates, restated pool exports): the daily run for day D re-reads [D - restatement_days, D]
    # and replaces the days whose content changed; 0: only D
    restatement_days: int = Field(0, ge=0, strict=True)  # YAML: an integer, not "2" nor true

    @model_validator(mode="after")
    def _observed_now_only(self):
        if self.observe_cron is not None and self.restatement_days:
            raise ValueError(
                "restatement_days must be 0 for an observed source (observe_cron): a past day "
                "cannot be observed again"
            )
        return self


class Partitions(Strict):
    start_date: date
    end_date: date | None = None  # last day (inclusive); none: up to yesterday


class Period(Strict):
    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class Schedule(Strict):
    cron: str
    timezone: str


class ReferenceGpuMarket(Strict):
    source: str
    lease_type: str


class ReferenceGpu(Strict):
    gpu_model: str
    gpu_variant: str
    kw_per_gpu: Positive
    utilisation: Annotated[float, Field(gt=0, le=1)]
    capex_usd_per_gpu: Annotated[float, Field(ge=0)]
    depreciation_years: Positive


class Economics(Strict):
    reference_gpu_market: ReferenceGpuMarket
    reference_gpu: ReferenceGpu


class Automation(Strict):
    derived_tables: Literal["eager", "none"]


class S3Settings(Strict):
    """An S3-compatible data path's endpoint and the *names* of the environment variables that
    hold its credentials (never the credentials)."""

    # host:port of an S3-compatible server (None: AWS); an http:// or https:// URL sets use_ssl
    endpoint: str | None = None
    region: str = "us-east-1"
    url_style: Literal["path", "vhost"] = "path"
    use_ssl: bool = True
    key_id_variable: str = "AWS_ACCESS_KEY_ID"
    secret_variable: str = "AWS_SECRET_ACCESS_KEY"

    @model_validator(mode="before")
    @classmethod
    def _scheme(cls, data):
        endpoint = data.get("endpoint") if isinstance(data, dict) else None
        if isinstance(endpoint, str) and endpoint.startswith(("http://", "https://")):
            scheme, _, address = endpoint.partition("://")
            return {**data, "endpoint": address.rstrip("/"), "use_ssl": scheme == "https"}
        return data


class LakeSettings(Strict):
    # the DuckLake catalog (sqlite:<file>, postgres:<libpq string>) and data path (a folder or
    # s3://bucket/prefix/); relative files and folders lie in the warehouse folder
    catalog: str = Field(pattern=r"^(sqlite|postgres):.+")
    data_path: str
    s3: S3Settings | None = None  # for an s3:// data path


class Profile(Strict):
    """Where the pipeline runs: its warehouse, and how a run's steps execute (one after the other
    in the run's process, or each in a process of its own, `max_concurrent` at once: Dagster's
    multiprocess executor). Dagster's instance is DAGSTER_HOME's dagster.yaml."""

    warehouse: LakeSettings
    executor: Literal["in_process", "multiprocess"] = "in_process"
    max_concurrent: int = Field(default=1, ge=1, strict=True)

    @model_validator(mode="after")
    def _one_writer_when_embedded(self):
        if self.executor == "multiprocess" and self.warehouse.catalog.startswith("sqlite:"):
            raise ValueError(
                "executor multiprocess needs a postgres: catalog: an embedded (sqlite:) lake "
                "has one writer at a time"
            )
        return self


class WarehouseSettings(Strict):
    # DuckDB's memory limit for the writer, e.g. "1GB"; past it, DuckDB spills to disk
    memory_limit: str = Field(pattern=r"(?i)^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    # upkeep keeps the snapshots of this many days (time travel, `megawatt sql --as-of`)
    snapshot_retention_days: int = Field(default=30, ge=1)
    upkeep_cron: str = "0 3 * * 0"  # weekly, Sunday 03:00 UTC


class Settings(Strict):
    automation: Automation
    default_owner: str = Field(pattern=r"^(team:[\w-]+|[^@\s]+@[^@\s]+)$")
    partitions: Partitions
    sample_period: Period
    schedule: Schedule
    warehouse: WarehouseSettings
    economics: Economics
    profiles: dict[str, Profile]
    profile_name: str = "local"  # not in the file: MEGAWATT_PROFILE's, set by load_settings

    @property
    def profile(self) -> Profile:
        return self.profiles[self.profile_name]


def _read_yaml(path: Path, top_key: str):
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DeclarationError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise DeclarationError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or top_key not in doc:
        raise DeclarationError(f"{path}: expected a top-level key {top_key!r}")
    unknown = set(doc) - {top_key}
    if unknown:
        raise DeclarationError(f"{path}: unknown top-level key(s) {sorted(unknown)}")
    return doc[top_key]


def describe_validation_error(error: ValidationError) -> str:
    """ "field 'a.b': message (value ...)" for each problem pydantic found."""
    problems = []
    for problem in error.errors():
        field = ".".join(
            str(p) for p in problem["loc"] if not str(p).startswith(("IndexLinked", "Fixed"))
        )
        value = "" if problem["type"] == "missing" else f" (value {problem.get('input')!r})"
        problems.append(f"field {field!r}: {problem['msg']}{value}")
    return "; ".join(problems)


def _parse(model: type[Strict], data, where: str):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise DeclarationError(f"{where}: {describe_validation_error(e)}") from None


def _parse_entries(path: Path, top_key: str, model: type[Strict], label: str = "site_id") -> list:
    entries = _read_yaml(path, top_key)
    if not isinstance(entries, list):
        raise DeclarationError(f"{path}: {top_key!r} must be a list of entries")
    parsed = []
    for i, data in enumerate(entries, start=1):
        name = data.get(label) if isinstance(data, dict) else None
        parsed.append(_parse(model, data, f"{path}: entry {i} ({label} {name!r})"))
    return parsed


class Infrastructure(BaseModel):
    sites: list[Site]
    asic_fleet: list[AsicFleet]
    gpu_fleet: list[GpuFleet]
    scenarios: list[Scenario]

    def tables(self) -> dict[str, pl.DataFrame]:
        """The reference tables `sites`, `asic_fleet` and `gpu_fleet`."""
        sites = pl.DataFrame(
            [
                {
                    **s.model_dump(exclude={"power_contract"}),
                    "contract_type": s.power_contract.type,
                    "adder_usd_per_mwh": getattr(s.power_contract, "adder_usd_per_mwh", None),
                    "fixed_price_usd_per_mwh": getattr(
                        s.power_contract, "fixed_price_usd_per_mwh", None
                    ),
                }
                for s in self.sites
            ]
        )
        return {
            "sites": sites,
            "asic_fleet": pl.DataFrame([f.model_dump() for f in self.asic_fleet]),
            "gpu_fleet": pl.DataFrame([f.model_dump() for f in self.gpu_fleet]),
            "scenarios": pl.DataFrame([s.model_dump() for s in self.scenarios]),
        }


def load_infrastructure(assets_dir: Path, partitions_start: date | None = None) -> Infrastructure:
    """Sites, fleets and scenarios; a scenario's `from_date` defaults to `partitions_start`."""
    folder = assets_dir / "infrastructure"
    sites = _parse_entries(folder / "sites.yaml", "sites", Site)
    site_ids = [s.site_id for s in sites]
    duplicated = {s for s in site_ids if site_ids.count(s) > 1}
    if duplicated:
        raise DeclarationError(
            f"{folder / 'sites.yaml'}: site_id declared twice: {sorted(duplicated)}"
        )
    fleets = {}
    for name, model in (("asic_fleet", AsicFleet), ("gpu_fleet", GpuFleet)):
        path = folder / f"{name}.yaml"
        fleets[name] = _parse_entries(path, name, model)
        for i, fleet in enumerate(fleets[name], start=1):
            if fleet.site_id not in site_ids:
                raise DeclarationError(
                    f"{path}: entry {i} (site_id {fleet.site_id!r}): field 'site_id': "
                    f"unknown site {fleet.site_id!r}; declared sites: {', '.join(site_ids)}"
                )
    scenarios = _parse_entries(assets_dir / "scenarios.yaml", "scenarios", Scenario, "scenario")
    names = [s.scenario for s in scenarios]
    if "base" not in names or len(set(names)) != len(names):
        raise DeclarationError(
            f"{assets_dir / 'scenarios.yaml'}: scenario names must be unique and include 'base'"
        )
    scenarios = [
        s.model_copy(update={"from_date": s.from_date or partitions_start}) for s in scenarios
    ]
    return Infrastructure(sites=sites, scenarios=scenarios, **fleets)


def load_sources(assets_dir: Path) -> dict[str, Source]:
    """The sources of sources.yaml, with their references to the other declarations checked
    (`check_references`)."""
    path = assets_dir / "sources.yaml"
    entries = _read_yaml(path, "sources")
    if not isinstance(entries, dict):
        raise DeclarationError(f"{path}: 'sources' must map each raw table to its source")
    sources = {
        name: _parse(Source, data, f"{path}: source {name!r}") for name, data in entries.items()
    }
    check_references(assets_dir, sources)
    return sources


PRICES = "energy_prices_hourly"  # the raw table an index-linked contract's zone price comes from
REFERENCE_TABLES = ("sites", "asic_fleet", "gpu_fleet", "scenarios")


def _names(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.sql")} if folder.is_dir() else set()


def check_references(assets_dir: Path, sources: dict[str, Source]) -> None:
    """Refuse (DeclarationError naming the file, the entry and the value) a reference between
    declarations that leads nowhere:

    - a site with an index-linked power contract whose `bidding_zone` no connector of the source
      of energy_prices_hourly serves (a connector says which zones it serves with
      `zones_served()`; when one of them cannot say, file_drop for one, the zones are not
      checked; a fixed-price site's zone is not priced, so not checked);
    - a pool sub-account (file_drop `subaccounts`) mapped to a site that sites.yaml does not
      declare;
    - a source's `deps` naming no table (a reference table, a source, a rollup or a derived
      table or view of assets/sql, assets/views): Dagster would take it for an external asset.

    The fleets' site_ids are checked by load_infrastructure.
    """
    from pipelines.sources import build_connector  # it imports this module

    sites_path = assets_dir / "infrastructure" / "sites.yaml"
    sources_path = assets_dir / "sources.yaml"
    sites = _parse_entries(sites_path, "sites", Site)
    site_ids = [s.site_id for s in sites]

    tables = {
        *REFERENCE_TABLES,
        *sources,
        *(s.stored_as for s in sources.values() if s.stored_as),
        *_names(assets_dir / "sql"),
        *_names(assets_dir / "views"),
    }
    connectors = {}  # (source, connector name) -> the connector, its settings checked
    for name, source in sources.items():
        where = f"{sources_path}: source {name!r}"
        unknown = [d for d in source.deps if d not in tables]
        if unknown:
            raise DeclarationError(
                f"{where}: field 'deps': unknown table(s) {unknown}; tables: "
                f"{', '.join(sorted(tables))}"
            )
        for connector, settings in source.connectors.items():
            connectors[name, connector] = build_connector(connector, settings, name, where)

    for (name, connector), built in connectors.items():
        for subaccount, site in getattr(built.settings, "subaccounts", {}).items():
            if site not in site_ids:
                raise DeclarationError(
                    f"{sources_path}: source {name!r}: connector {connector!r}: field "
                    f"'subaccounts.{subaccount}': unknown site {site!r}; sites declared in "
                    f"{sites_path}: {', '.join(site_ids)}"
                )

    priced = [
        (i, s) for i, s in enumerate(sites, start=1) if s.power_contract.type == "index_linked"
    ]
    served: dict[str, set[str] | None] = {}
    for (name, connector), built in connectors.items():
        if name == PRICES:
            zones_served = getattr(built, "zones_served", None)
            served[connector] = zones_served() if zones_served else None
    if not priced or any(zones is None for zones in served.values()):
        return
    zones = set().union(*served.values())
    for i, site in priced:
        if site.bidding_zone in zones:
            continue
        if served:
            by = "; ".join(f"{c}: {', '.join(sorted(z)) or 'none'}" for c, z in served.items())
            what = f"the connectors of source {PRICES!r} in {sources_path} serve {by}"
        else:
            what = f"{sources_path} declares no source {PRICES!r}"
        raise DeclarationError(
            f"{sites_path}: entry {i} (site_id {site.site_id!r}): field 'bidding_zone': no price "
            f"source serves zone {site.bidding_zone!r}, the zone its index_linked power contract "
            f"is priced in; {what}"
        )


def load_settings(assets_dir: Path, profile: str | None = None) -> Settings:
    """settings.yaml, in the profile `profile` (default: MEGAWATT_PROFILE's, else local), whose
    values written ${NAME} are read from the environment (the unused profiles' are not)."""
    from pipelines.settings import PROFILE

    path = assets_dir / "settings.yaml"
    doc = yaml.safe_load(path.read_text())
    name = profile or PROFILE
    profiles = doc.get("profiles") if isinstance(doc, dict) else None
    if isinstance(profiles, dict):
        if name not in profiles:
            raise DeclarationError(
                f"{path}: no profile {name!r} (MEGAWATT_PROFILE); the profiles: "
                f"{', '.join(profiles)}"
            )
        profiles[name] = _from_environment(profiles[name], f"{path}: profile {name!r}")
        doc["profile_name"] = name
    return _parse(Settings, doc, str(path))


def _from_environment(value, where: str, key: str = ""):
    """`value` with each ${NAME} in its strings replaced by the environment variable NAME."""
    if isinstance(value, dict):
        return {
            k: _from_environment(v, where, f"{key}.{k}" if key else k) for k, v in value.items()
        }
    if not isinstance(value, str):
        return value
    try:
        return Template(value).substitute(os.environ)
    except KeyError as e:
        raise DeclarationError(
            f"{where}: field {key!r}: the environment variable {e.args[0]} is not set"
        ) from None
    except ValueError:
        raise DeclarationError(
            f"{where}: field {key!r}: {value!r} is not text with ${{NAME}} variables"
        ) from None
