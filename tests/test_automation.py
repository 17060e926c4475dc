"""What settings.yaml promises for automation is what the definitions run by default."""

from __future__ import annotations

import dagster as dg


def _automation(defs: dg.Definitions):
    return [s for s in defs.sensors if isinstance(s, dg.AutomationConditionSensorDefinition)]


def test_eager_derived_tables_have_their_sensor_running_by_default(project):
    settings = project.assets_dir / "settings.yaml"
    assert "derived_tables: eager" in settings.read_text()
    (sensor,) = _automation(project.definitions())
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    hashprice = project.definitions().resolve_assets_def("hashprice_daily")
    assert sensor.asset_selection.resolve([hashprice]) >= {dg.AssetKey("hashprice_daily")}

    text = settings.read_text()
    settings.write_text(text.replace("derived_tables: eager", "derived_tables: none"))
    assert _automation(project.definitions()) == []
