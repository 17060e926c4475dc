"""A SQL asset's, view's or rollup's dependencies are the tables its query reads (sqlglot): there
is no `deps:` to forget; what the SQL cannot say (lookbacks) must name a table it reads."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.errors import DeclarationError
from pipelines.settings import ASSETS_DIR
from pipelines.sql_assets import (
    check_reads,
    load_sql_assets,
    load_views,
    parse_sql_asset,
    tables_read,
)

# The `deps:` of each header before they were derived (commit 39910c3), as sets.
PREVIOUS_DEPS = {
    "ai_capacity_daily": {
        "gpu_usage_daily",
        "gpu_fleet",
        "sites",
        "site_power_price_daily",
        "gpu_market_prices_daily",
        "scenario_factors_daily",
    },
    "curtailment_hourly": {
        "site_power_price_hourly",
        "mining_profitability_daily",
        "hashprice_daily",
    },
    "fleet_health_daily": {"miner_telemetry_daily", "asic_fleet"},
    "hashprice_daily": {"btc_network_daily", "scenario_factors_daily"},
    "mining_profitability_daily": {
        "mining_output_daily",
        "hashprice_daily",
        "site_power_price_daily",
        "asic_fleet",
        "sites",
    },
    "scenario_factors_daily": {"scenarios"},
    "site_economics_daily": {
        "mining_profitability_daily",
        "ai_capacity_daily",
        "curtailment_hourly",
        "hashprice_daily",
        "scenario_factors_daily",
        "gpu_market_prices_daily",
        "asic_fleet",
        "gpu_fleet",
        "sites",
    },
    "site_power_price_daily": {"site_power_price_hourly"},
    "site_power_price_hourly": {"sites", "energy_prices_hourly", "fx_rates_daily"},
    "v_curtailment_monthly": {"curtailment_hourly"},
    "v_fleet_output_daily": {"fleet_health_daily", "mining_output_daily", "sites"},
    "v_hashprice": {"hashprice_daily"},
    "v_site_answer": {"site_economics_daily", "sites"},
}
# The rollup declared [asic_fleet] but reads only its batch `new`; its source's deps in
# sources.yaml ([sites, asic_fleet]) were and are its edges in the graph.
PREVIOUS_ROLLUP_DEPS = {"miner_telemetry_daily": set()}

VIEW = """\
-- description: A view.
-- group: serving
SELECT date, hashprice_usd_per_ph_day FROM hashprice_daily WHERE scenario = 'base'
"""


def shipped():
    rollups = [parse_sql_asset(p) for p in sorted((ASSETS_DIR / "rollups").glob("*.sql"))]
    return load_sql_assets(ASSETS_DIR), load_views(ASSETS_DIR), rollups


def test_the_shipped_queries_read_what_their_headers_declared():
    sql, views, rollups = shipped()
    derived = {s.table: set(s.header.dep_names()) for s in [*sql, *views]}
    assert derived == PREVIOUS_DEPS
    assert {r.table: set(r.header.dep_names()) for r in rollups} == PREVIOUS_ROLLUP_DEPS
    lookbacks = {s.table: s.header.lookbacks() for s in sql if s.header.lookbacks()}
    assert lookbacks == {"site_power_price_hourly": {"fx_rates_daily": 7}}


def test_the_graph_has_the_edges_the_queries_read(project):
    defs = project.definitions()
    graph = defs.resolve_asset_graph()
    for table, deps in PREVIOUS_DEPS.items():
        assert graph.get(dg.AssetKey(table)).parent_keys == {dg.AssetKey(d) for d in deps}, table
    hourly = defs.resolve_assets_def(dg.AssetKey("site_power_price_hourly"))
    mapping = hourly.get_partition_mapping(dg.AssetKey("fx_rates_daily"))
    assert mapping == dg.TimeWindowPartitionMapping(start_offset=-7)


def test_a_table_added_to_a_query_is_a_dependency(project):
    """The issue: a table read but not declared. Now there is nothing to declare."""
    (project.assets_dir / "views" / "v_new.sql").write_text(
        VIEW.replace("FROM hashprice_daily", "FROM hashprice_daily JOIN sites ON true")
    )
    graph = project.definitions().resolve_asset_graph()
    assert graph.get(dg.AssetKey("v_new")).parent_keys == {
        dg.AssetKey("hashprice_daily"),
        dg.AssetKey("sites"),
    }


def test_a_deps_header_is_refused_naming_the_tables_read(project):
    path = project.assets_dir / "views" / "v_new.sql"
    path.write_text("-- deps: [hashprice_daily]\n" + VIEW)
    with pytest.raises(
        DeclarationError, match=rf"{path}: header field 'deps' .*\['hashprice_daily'\]"
    ):
        project.definitions()


def test_a_lookback_on_a_table_not_read_is_refused(project):
    path = project.assets_dir / "sql" / "site_power_price_hourly.sql"
    path.write_text(
        path.read_text().replace("{fx_rates_daily: 7}", "{fx_rates_daily: 7, btc_network_daily: 3}")
    )
    with pytest.raises(
        DeclarationError, match=rf"{path}: lookback_days names \['btc_network_daily'\]"
    ):
        project.definitions()


def test_a_lookback_left_after_its_table_is_no_longer_read_is_refused(project):
    path = project.assets_dir / "sql" / "site_power_price_hourly.sql"
    path.write_text(
        path.read_text().replace(
            "ASOF LEFT JOIN fx_rates_daily AS fx", "ASOF LEFT JOIN energy_prices_hourly AS fx"
        )
    )
    with pytest.raises(
        DeclarationError, match=rf"{path}: lookback_days names \['fx_rates_daily'\]"
    ):
        project.definitions()


def test_a_lookback_on_a_view_is_refused(project):
    path = project.assets_dir / "views" / "v_new.sql"
    path.write_text("-- lookback_days: {hashprice_daily: 2}\n" + VIEW)
    with pytest.raises(DeclarationError, match=rf"{path}: lookback_days is for a partitioned"):
        project.definitions()


def test_a_lookback_of_zero_days_is_refused(project):
    path = project.assets_dir / "sql" / "site_power_price_hourly.sql"
    path.write_text(path.read_text().replace("{fx_rates_daily: 7}", "{fx_rates_daily: 0}"))
    with pytest.raises(
        DeclarationError, match=rf"{path}: header field 'lookback_days.fx_rates_daily'"
    ):
        project.definitions()


@pytest.mark.parametrize(
    "query, message",
    [
        ("SELECT date FROM hashprice_daily WHERE (", "sqlglot cannot parse the query"),
        ("SELEC date FROM hashprice_daily", "sqlglot cannot parse the query"),
        ("SELECT 1 AS a; SELECT 2 AS a", "the query is not one SELECT query"),
        ("DELETE FROM hashprice_daily", "the query is not one SELECT query"),
        (
            "SELECT * FROM main.hashprice_daily",
            r"name the tables without a schema: \['main.hashprice_daily'\]",
        ),
        ("SELECT * FROM 'prices.parquet'", r"reads \['prices.parquet'\]: not table names"),
    ],
)
def test_a_query_that_cannot_be_read_fails_at_load(project, query, message):
    path = project.assets_dir / "sql" / "hashprice_daily.sql"
    header = path.read_text().split("\nWITH ")[0]
    path.write_text(f"{header}\n{query}\n")
    with pytest.raises(DeclarationError, match=rf"{path}: {message}"):
        project.definitions()


def test_a_rollup_must_read_its_batch(project):
    path = project.assets_dir / "rollups" / "miner_telemetry_daily.sql"
    path.write_text(path.read_text().replace("FROM new", "FROM asic_fleet"))
    with pytest.raises(DeclarationError, match=rf"{path}: a rollup reads its batch `new`"):
        project.definitions()


def test_a_rollup_reading_a_table_besides_its_batch_depends_on_it(tmp_path):
    path = tmp_path / "rollups" / "r.sql"
    path.parent.mkdir()
    path.write_text(
        "-- description: r\n-- group: g\n-- partition_column: date\n"
        "SELECT new.date, count(*) AS n FROM new JOIN asic_fleet USING (model) GROUP BY ALL\n"
    )
    assert parse_sql_asset(path).header.dep_names() == ["asic_fleet"]


@pytest.mark.parametrize(
    "query, reads",
    [
        # CTE names are not tables, tables read inside CTEs are
        ("WITH a AS (SELECT * FROM t) SELECT * FROM a JOIN u USING (x)", ["t", "u"]),
        # a CTE shadows a table only where it is in scope
        ("SELECT * FROM (WITH t AS (SELECT 1 AS x) SELECT * FROM t) JOIN t USING (x)", ["t"]),
        ("WITH x AS (SELECT * FROM t) SELECT * FROM (SELECT * FROM x) AS x2", ["t"]),
        # subqueries anywhere: IN, EXISTS, scalar, LATERAL, set operations
        (
            "SELECT (SELECT max(z) FROM d) AS m FROM a WHERE x IN (SELECT x FROM b) "
            "AND EXISTS (SELECT 1 FROM c WHERE c.y = a.y)",
            ["a", "b", "c", "d"],
        ),
        ("SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x)", ["a", "b"]),
        ("SELECT x FROM a UNION ALL SELECT x FROM b", ["a", "b"]),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", []),
        # table functions are not tables; $parameters parse
        (
            "SELECT * FROM range($start_date, $end_date, INTERVAL 1 DAY) AS d(day) "
            "CROSS JOIN read_parquet('x/*.parquet') AS p CROSS JOIN unnest([1, 2]) AS u(i) "
            "ASOF LEFT JOIN fx AS f ON p.ts >= f.date WHERE p.x = $reference_gpu_utilisation",
            ["fx"],
        ),
        ("SELECT * FROM a AS b QUALIFY row_number() OVER (PARTITION BY b.x) = 1", ["a"]),
    ],
)
def test_tables_read(query, reads):
    assert tables_read(query, "q.sql") == reads


def test_a_read_that_is_no_table_or_view_is_named():
    sql, views, rollups = shipped()
    specs = [*sql, *views, *rollups]
    tables = {*(d for deps in PREVIOUS_DEPS.values() for d in deps), *PREVIOUS_DEPS}
    check_reads(specs, tables)  # every shipped read is known
    with pytest.raises(
        DeclarationError, match=r"\.sql: reads \[.hashprice_daily.\], which are no table or view"
    ):
        check_reads(specs, tables - {"hashprice_daily"})
