"""Infrastructure as data: the YAML declarations become the reference tables, and a typo in them
fails with an error naming the file, the entry and the field."""

from __future__ import annotations

import re

import pytest
import yaml

from pipelines.declarations import load_infrastructure, load_settings
from pipelines.errors import DeclarationError


def test_declarations_become_reference_tables(project):
    result = project.run("2024-03-28", "2024-04-01")
    assert result.success
    declared = yaml.safe_load((project.assets_dir / "infrastructure" / "sites.yaml").read_text())
    rows = project.query(
        "SELECT site_id, country, contract_type, adder_usd_per_mwh, fixed_price_usd_per_mwh "
        "FROM sites ORDER BY site_id"
    )
    expected = sorted(
        (
            s["site_id"],
            s["country"],
            s["power_contract"]["type"],
            s["power_contract"].get("adder_usd_per_mwh"),
            s["power_contract"].get("fixed_price_usd_per_mwh"),
        )
        for s in declared["sites"]
    )
    assert rows == expected
    fleets = yaml.safe_load((project.assets_dir / "infrastructure" / "gpu_fleet.yaml").read_text())
    (gpus,) = project.query("SELECT sum(gpus) FROM gpu_fleet")[0]
    assert gpus == sum(f["gpus"] for f in fleets["gpu_fleet"])


def test_a_new_site_is_an_edit_of_the_yaml(project):
    path = project.assets_dir / "infrastructure" / "sites.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["sites"].append(
        {**doc["sites"][-1], "site_id": "py-villarrica", "name": "Villarrica", "country": "PY"}
    )
    path.write_text(yaml.safe_dump(doc))
    infrastructure = load_infrastructure(project.assets_dir)
    assert "py-villarrica" in infrastructure.tables()["sites"]["site_id"].to_list()


def _break(project, file: str, edit) -> str:
    """Apply `edit` to the parsed YAML `file`, write it back, return the loader's error."""
    path = project.assets_dir / "infrastructure" / file
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeclarationError) as error:
        load_infrastructure(project.assets_dir)
    return str(error.value)


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        pytest.param(
            "sites.yaml",
            lambda d: d["sites"][1].update(grid_capacity_mvv=30),
            r"sites\.yaml: entry 2 \(site_id 'no-narvik'\): field 'grid_capacity_mvv': "
            r"Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            "sites.yaml",
            lambda d: d["sites"][0].pop("pue"),
            r"sites\.yaml: entry 1 \(site_id 'se-lulea'\): field 'pue': Field required",
            id="missing-field",
        ),
        pytest.param(
            "asic_fleet.yaml",
            lambda d: d["asic_fleet"][2].update(units="eighteen thousand"),
            r"asic_fleet\.yaml: entry 3 \(site_id 'us-tx-rockdale'\): field 'units': "
            r"Input should be a valid integer.*'eighteen thousand'",
            id="wrong-type",
        ),
        pytest.param(
            "sites.yaml",
            lambda d: d["sites"][3]["power_contract"].update(type="fixed_price"),
            r"sites\.yaml: entry 4 \(site_id 'ca-baie-comeau'\): field 'power_contract': "
            r"Input tag 'fixed_price' found using 'type' does not match",
            id="unknown-contract-type",
        ),
        pytest.param(
            "gpu_fleet.yaml",
            lambda d: d["gpu_fleet"][1].update(site_id="us-tx-rockdael"),
            r"gpu_fleet\.yaml: entry 2 \(site_id 'us-tx-rockdael'\): field 'site_id': "
            r"unknown site 'us-tx-rockdael'",
            id="unknown-site",
        ),
    ],
)
def test_bad_declaration_names_file_entry_and_field(project, file, edit, expected):
    message = _break(project, file, edit)
    assert re.search(expected, message), message


def test_norway_problem_is_caught(project):
    """YAML reads an unquoted NO as false: the country field says so instead of storing False."""
    path = project.assets_dir / "infrastructure" / "sites.yaml"
    path.write_text(path.read_text().replace('country: "NO"', "country: NO"))
    with pytest.raises(DeclarationError, match=r"entry 2 \(site_id 'no-narvik'\): field 'country'"):
        load_infrastructure(project.assets_dir)


CLUSTER_VARIABLES = {"MEGAWATT_LAKE_DB": "megawatt_lake", "MEGAWATT_S3_BUCKET": "lake-bucket",
                     "MEGAWATT_S3_ENDPOINT": "http://127.0.0.1:9000"}  # fmt: skip


def test_a_profile_is_chosen_by_the_environment_with_its_variables(project, monkeypatch):
    """MEGAWATT_PROFILE=cluster: the same declarations on a PostgreSQL catalog and S3, each step
    in a process of its own; ${NAME} values read from the environment."""
    from pipelines import settings as where

    for name, value in CLUSTER_VARIABLES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(where, "PROFILE", "cluster")
    profile = load_settings(project.assets_dir).profile
    assert profile.warehouse.catalog == "postgres:dbname=megawatt_lake"
    assert profile.warehouse.data_path == "s3://lake-bucket/lake/"
    # an http:// endpoint is a host:port without TLS
    assert (profile.warehouse.s3.endpoint, profile.warehouse.s3.use_ssl) == (
        "127.0.0.1:9000",
        False,
    )
    job = project.definitions().resolve_job_def("daily")
    assert job.executor_def.name == "multiprocess"
    assert profile.max_concurrent == 2
    monkeypatch.setattr(where, "PROFILE", "local")
    assert project.definitions().resolve_job_def("daily").executor_def.name == "in_process"


def test_a_profile_missing_a_variable_or_unknown_is_refused_naming_it(project, monkeypatch):
    path = project.assets_dir / "settings.yaml"
    for name in CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DeclarationError) as error:
        load_settings(project.assets_dir, "cluster")
    assert str(error.value) == (
        f"{path}: profile 'cluster': field 'warehouse.catalog': the environment variable "
        "MEGAWATT_LAKE_DB is not set"
    )
    with pytest.raises(DeclarationError) as error:
        load_settings(project.assets_dir, "clutser")
    assert (
        str(error.value)
        == f"{path}: no profile 'clutser' (MEGAWATT_PROFILE); the profiles: local, cluster"
    )


def test_steps_in_processes_on_an_embedded_lake_are_refused(project):
    path = project.assets_dir / "settings.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["profiles"]["local"]["executor"] = "multiprocess"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(DeclarationError) as error:
        load_settings(project.assets_dir, "local")
    assert str(error.value).startswith(f"{path}: ")
    assert "executor multiprocess needs a postgres: catalog" in str(error.value)
