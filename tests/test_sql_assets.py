"""A derived table is a SQL file plus its contract: no Python edit."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.errors import DeclarationError

NEW_SQL = """\
-- description: Fees per block per UTC day.
-- group: network
-- partition_column: date
SELECT date, fees_btc / blocks AS fee_per_block_btc
FROM btc_network_daily
WHERE date >= $start_date AND date < $end_date
"""

NEW_CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: fee_per_block_daily
version: 1.0.0
status: active
schema:
  - name: fee_per_block_daily
    physicalType: table
    description: Mean fee per block per UTC day.
    properties:
      - name: date
        physicalType: DATE
        primaryKey: true
        primaryKeyPosition: 1
        required: true
        description: UTC day.
      - name: fee_per_block_btc
        physicalType: DOUBLE
        required: true
        description: Mean fee per block.
        logicalType: number
        logicalTypeOptions: {minimum: 0}
"""


def test_adding_a_sql_file_and_contract_adds_an_asset(project):
    (project.assets_dir / "sql" / "fee_per_block_daily.sql").write_text(NEW_SQL)
    (project.contracts_dir / "fee_per_block_daily.odcs.yaml").write_text(NEW_CONTRACT)
    defs = project.definitions()
    key = dg.AssetKey("fee_per_block_daily")
    graph = defs.resolve_asset_graph()
    assert graph.get(key).parent_keys == {dg.AssetKey("btc_network_daily")}
    assert project.run("2024-04-19", "2024-04-21", defs=defs).success
    rows = project.query("SELECT date, fee_per_block_btc FROM fee_per_block_daily ORDER BY date")
    raw = project.query("SELECT date, fees_btc / blocks FROM btc_network_daily ORDER BY date")
    assert rows == raw and len(rows) == 3


def test_a_sql_file_without_contract_is_refused(project):
    (project.assets_dir / "sql" / "fee_per_block_daily.sql").write_text(NEW_SQL)
    with pytest.raises(DeclarationError, match=r"no contract for \['fee_per_block_daily'\]"):
        project.definitions()


def test_a_bad_header_names_the_file_and_field(project):
    path = project.assets_dir / "sql" / "fee_per_block_daily.sql"
    path.write_text(NEW_SQL.replace("-- group: network", "-- groop: network"))
    (project.contracts_dir / "fee_per_block_daily.odcs.yaml").write_text(NEW_CONTRACT)
    with pytest.raises(DeclarationError, match=rf"{path}: header .*field 'groop': Extra inputs"):
        project.definitions()


def test_a_query_whose_columns_differ_from_its_contract_fails_clearly(project):
    (project.assets_dir / "sql" / "fee_per_block_daily.sql").write_text(
        NEW_SQL.replace("AS fee_per_block_btc", "AS fee_btc_per_block")
    )
    (project.contracts_dir / "fee_per_block_daily.odcs.yaml").write_text(NEW_CONTRACT)
    result = project.run("2024-04-19", "2024-04-19", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "missing column(s) ['fee_per_block_btc']" in message
    assert "unexpected column(s) ['fee_btc_per_block']" in message
