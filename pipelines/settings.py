"""Where things are. Paths come from the environment, with defaults inside the project folder.

- ``MEGAWATT_WAREHOUSE_DIR``: folder of the DuckDB warehouse (default ``./warehouse``).
- ``MEGAWATT_ASSETS_DIR``: the declarations (default ``./assets``).
- ``MEGAWATT_CONTRACTS_DIR``: the data contracts (default ``./data_contracts``).
- ``MEGAWATT_PROFILE``: where it runs, a profile of ``assets/settings.yaml`` (default ``local``).
- ``DAGSTER_HOME``: Dagster's instance, run history and schedule state (default ``./dagster_home``
  in the local profile, ``./deploy/<profile>`` in another).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"


def _path(variable: str, default: Path) -> Path:
    return Path(os.environ.get(variable) or default).resolve()


ASSETS_DIR = _path("MEGAWATT_ASSETS_DIR", PROJECT_DIR / "assets")
CONTRACTS_DIR = _path("MEGAWATT_CONTRACTS_DIR", PROJECT_DIR / "data_contracts")
WAREHOUSE_DIR = _path("MEGAWATT_WAREHOUSE_DIR", PROJECT_DIR / "warehouse")
PROFILE = os.environ.get("MEGAWATT_PROFILE") or "local"
# the folder whose dagster.yaml a new DAGSTER_HOME starts from
PROFILE_HOME = PROJECT_DIR / ("dagster_home" if PROFILE == "local" else f"deploy/{PROFILE}")
DAGSTER_HOME = _path("DAGSTER_HOME", PROFILE_HOME)
