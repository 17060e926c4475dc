"""Shared fixtures: a temporary copy of the declarations, and in-process runs of the daily job."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from pipelines.definitions import DAILY_JOB, build_definitions
from pipelines.settings import ASSETS_DIR, CONTRACTS_DIR
from pipelines.warehouse import Warehouse

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass
class Project:
    """A copy of assets/ and data_contracts/ with its own warehouse, all under tmp_path."""

    assets_dir: Path
    contracts_dir: Path
    warehouse_dir: Path

    def definitions(self) -> dg.Definitions:
        return build_definitions(self.assets_dir, self.contracts_dir, self.warehouse_dir)

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.warehouse_dir)

    def run(self, start: str, end: str, *, defs: dg.Definitions | None = None, **kwargs):
        """Run the daily job for UTC days [start, end] in-process, on an ephemeral instance."""
        job = (defs or self.definitions()).resolve_job_def(DAILY_JOB)
        tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
        result = job.execute_in_process(
            instance=kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral(),
            tags=tags | kwargs.pop("tags", {}),
            run_config=QUIET,
            **kwargs,
        )
        self.warehouse.publish(result.run_id)  # as `megawatt` and the run sensors do
        return result

    def query(self, sql: str, params=None) -> list[tuple]:
        with self.warehouse.reader() as con:
            return con.execute(sql, params or []).fetchall()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    assets_dir, contracts_dir = tmp_path / "assets", tmp_path / "data_contracts"
    shutil.copytree(ASSETS_DIR, assets_dir)
    shutil.copytree(CONTRACTS_DIR, contracts_dir)
    return Project(assets_dir, contracts_dir, tmp_path / "warehouse")


def day(text: str) -> date:
    return date.fromisoformat(text)
