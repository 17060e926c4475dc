"""References between declarations are checked when they load: a site's bidding zone must be
served by a price connector, a pool sub-account must map to a declared site, a source's deps must
name tables. The refusal names the file, the entry and the value, before anything is written."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from pipelines.declarations import load_sources
from pipelines.errors import DeclarationError


def _edit(path, edit) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def _site(project, site_id: str, **fields) -> None:
    def edit(doc):
        site = next(s for s in doc["sites"] if s["site_id"] == site_id)
        site.update(fields)

    _edit(project.assets_dir / "infrastructure" / "sites.yaml", edit)


def _live(project) -> None:
    """The live connectors (assets/examples/sources.live.yaml) as sources.yaml."""
    shutil.copy(
        project.assets_dir / "examples" / "sources.live.yaml", project.assets_dir / "sources.yaml"
    )


def test_a_zone_the_sample_does_not_serve_is_refused_at_load(project):
    """Sample mode: the sample serves the zones of its energy_prices_hourly.csv. Before, the site
    was written and site_power_price_hourly blocked later on a NULL power price."""
    _site(project, "se-lulea", bidding_zone="SE2")
    with pytest.raises(DeclarationError) as error:
        project.definitions()
    message = str(error.value)
    sites = re.escape(str(project.assets_dir / "infrastructure" / "sites.yaml"))
    assert re.search(
        rf"^{sites}: entry 1 \(site_id 'se-lulea'\): field 'bidding_zone': no price source "
        r"serves zone 'SE2'",
        message,
    ), message
    assert (
        "source 'energy_prices_hourly'" in message and "sample: ERCOT_HB_WEST, NO4, SE1" in message
    )


def test_a_zone_no_live_connector_serves_is_refused_at_load(project):
    """Live mode: energy_charts, entsoe and ercot declare the zones they serve (`zones`)."""
    _live(project)
    load_sources(project.assets_dir)  # the example as shipped: every zone is served
    _site(project, "us-tx-rockdale", bidding_zone="ERCOT_HB_NORTH")
    with pytest.raises(DeclarationError) as error:
        load_sources(project.assets_dir)
    message = str(error.value)
    assert re.search(
        r"sites\.yaml: entry 3 \(site_id 'us-tx-rockdale'\): field 'bidding_zone': no price "
        r"source serves zone 'ERCOT_HB_NORTH'.*energy_charts: NO4, SE1; ercot: ERCOT_HB_WEST",
        message,
    ), message


def test_a_fixed_price_site_needs_no_zone_price(project):
    """ca-baie-comeau pays a fixed price: its zone (CA_QC) is served by no connector, and is not
    read, so it is not checked."""
    _site(project, "ca-baie-comeau", bidding_zone="NOWHERE")
    project.definitions()


def test_zones_of_drop_files_cannot_be_checked(project):
    """file_drop cannot say which zones its files will hold: the zones are then not checked."""

    def edit(doc):
        doc["sources"]["energy_prices_hourly"]["connectors"] = {
            "file_drop": {"folder": str(project.assets_dir / "examples" / "drop")}
        }

    _edit(project.assets_dir / "sources.yaml", edit)
    _site(project, "se-lulea", bidding_zone="SE2")
    load_sources(project.assets_dir)


def test_no_price_source_at_all_is_named(project):
    _edit(project.assets_dir / "sources.yaml", lambda d: d["sources"].pop("energy_prices_hourly"))
    with pytest.raises(DeclarationError, match=r"sites\.yaml: entry 1 \(site_id 'se-lulea'\): "
                       r"field 'bidding_zone'.*sources\.yaml declares no source "
                       r"'energy_prices_hourly'"):  # fmt: skip
        load_sources(project.assets_dir)


def test_a_subaccount_of_an_unknown_site_is_refused_at_load(project):
    _live(project)

    def edit(doc):
        doc["sources"]["mining_output_daily"]["connectors"]["file_drop"]["subaccounts"][
            "mw-narvik"
        ] = "no-narvick"

    _edit(project.assets_dir / "sources.yaml", edit)
    with pytest.raises(DeclarationError) as error:
        load_sources(project.assets_dir)
    message = str(error.value)
    assert re.search(
        r"sources\.yaml: source 'mining_output_daily': connector 'file_drop': field "
        r"'subaccounts\.mw-narvik': unknown site 'no-narvick'; sites declared in .*sites\.yaml: "
        r"se-lulea, no-narvik, us-tx-rockdale, ca-baie-comeau",
        message,
    ), message


def test_a_dep_on_no_table_is_refused_at_load(project):
    """Dagster would take the misspelt name for an external asset and say nothing."""
    _edit(
        project.assets_dir / "sources.yaml",
        lambda d: d["sources"]["gpu_usage_daily"].update(deps=["gpu_fleets"]),
    )
    with pytest.raises(DeclarationError) as error:
        project.definitions()
    message = str(error.value)
    assert re.search(
        r"sources\.yaml: source 'gpu_usage_daily': field 'deps': unknown table\(s\) "
        r"\['gpu_fleets'\]; tables: .*gpu_fleet,",
        message,
    ), message
