-- description: >-
--   Mining profitability per site, UTC day and scenario: BTC mined against expected (realised
--   hashrate x hashvalue), revenue, energy and its cost under the site's contract, margin, cost
--   per BTC, breakeven power price and the fleet's all-in efficiency.
-- group: economics
-- partition_column: date
WITH fleet AS (
    SELECT
        site_id,
        sum(units * watts_per_unit) / sum(units * th_per_unit) AS fleet_j_per_th
    FROM asic_fleet
    GROUP BY site_id
),

scenario_days AS (
    SELECT
        output.date,
        output.site_id,
        hashprice.scenario,
        output.hashrate_th_s,
        output.uptime_pct,
        -- Luck is kept: under a harder difficulty the same hashrate mines proportionally less.
        output.btc_mined / hashprice.difficulty_factor AS mined_btc,
        output.hashrate_th_s / 1000 * hashprice.hashvalue_btc_per_ph_day AS expected_btc,
        hashprice.price_usd AS btc_price_usd,
        output.energy_mwh AS fleet_energy_mwh,
        power.avg_power_price_usd_per_mwh,
        fleet.fleet_j_per_th * sites.pue AS efficiency_j_per_th
    FROM mining_output_daily AS output
    JOIN hashprice_daily AS hashprice USING (date)
    JOIN sites USING (site_id)
    JOIN fleet USING (site_id)
    -- a site-day without a power price (an unpriced hour) has no row until it is priced
    JOIN site_power_price_daily AS power USING (site_id, date)
    WHERE output.date >= $start_date AND output.date < $end_date
)

SELECT
    date,
    site_id,
    scenario,
    hashrate_th_s,
    uptime_pct,
    mined_btc AS btc_mined,
    expected_btc,
    mined_btc / nullif(expected_btc, 0) AS luck,
    btc_price_usd,
    mined_btc * btc_price_usd AS revenue_usd,
    fleet_energy_mwh AS energy_mwh,
    avg_power_price_usd_per_mwh,
    -- Daily energy is drawn evenly over the day's hours, so its cost is energy x mean hourly price.
    fleet_energy_mwh * avg_power_price_usd_per_mwh AS energy_cost_usd,
    revenue_usd - energy_cost_usd AS margin_usd,
    energy_cost_usd / nullif(mined_btc, 0) AS cost_per_btc_usd,
    revenue_usd / nullif(fleet_energy_mwh, 0) AS breakeven_usd_per_mwh,
    efficiency_j_per_th
FROM scenario_days
