"""A live connector declared in sources.yaml, materialised through Dagster into the warehouse."""

from __future__ import annotations

import dagster as dg
import yaml
from pytest_httpserver import HTTPServer

from .conftest import FAST


def test_mempool_source_materialises_one_day(project, mempool: HTTPServer):
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["btc_network_daily"]["connectors"] = {
        "mempool": {"base_url": mempool.url_for(""), **FAST}
    }
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))

    result = project.run(
        "2024-04-20", "2024-04-20", asset_selection=[dg.AssetKey("btc_network_daily")]
    )
    assert result.success
    rows = project.query(
        "SELECT date::VARCHAR, blocks, first_height, subsidy_btc, round(fees_btc, 8), price_usd "
        "FROM btc_network_daily ORDER BY date"
    )
    assert rows == [("2024-04-20", 145, 840000, 3.125, 395.01108664, 64941.0)]
    assert any("/api/v1/blocks/" in entry[0].url for entry in mempool.log)
