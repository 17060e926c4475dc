"""assets/examples/sources.live.yaml declares only known connectors with valid settings."""

from __future__ import annotations

import shutil

from pipelines.settings import ASSETS_DIR


def test_live_example_loads(project):
    shutil.copy(ASSETS_DIR / "examples" / "sources.live.yaml", project.assets_dir / "sources.yaml")
    defs = project.definitions()  # builds every connector from its settings (no request made)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"btc_network_daily", "energy_prices_hourly", "fx_rates_daily"} <= keys
