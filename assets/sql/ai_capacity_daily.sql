-- description: >-
--   AI capacity per site, UTC day, GPU model and scenario: GPU-hours available and sold,
--   utilisation, revenue against the reference market price, energy (installed GPUs at full draw,
--   PUE included) and its cost, margin, and how many GPUs the site's grid capacity could host.
-- group: economics
-- partition_column: date
WITH scenario_days AS (
    SELECT
        usage.date,
        usage.site_id,
        usage.gpu_model,
        factors.scenario,
        fleet.gpu_variant,
        fleet.gpus,
        fleet.gpus * 24.0 AS available_gpu_hours,
        -- A scenario's utilisation replaces the recorded one; its price trend scales the prices.
        coalesce(factors.ai_utilisation * available_gpu_hours, usage.gpu_hours_sold)
            AS sold_gpu_hours,
        usage.revenue_usd / nullif(usage.gpu_hours_sold, 0) * factors.gpu_price_factor
            AS realised_price,
        market.price_usd_per_gpu_hour * factors.gpu_price_factor AS market_price,
        fleet.gpus * fleet.kw_per_gpu * 24 * sites.pue / 1000 AS gpu_energy_mwh,
        power.avg_power_price_usd_per_mwh,
        1000 / (fleet.kw_per_gpu * sites.pue) AS site_gpus_per_mw,
        sites.grid_capacity_mw
    FROM gpu_usage_daily AS usage
    JOIN gpu_fleet AS fleet USING (site_id, gpu_model)
    JOIN sites USING (site_id)
    JOIN scenario_factors_daily AS factors USING (date)
    -- a site-day without a power price (an unpriced hour) has no row until it is priced
    JOIN site_power_price_daily AS power USING (site_id, date)
    LEFT JOIN gpu_market_prices_daily AS market
        ON market.date = usage.date
        AND market.gpu_model = fleet.gpu_model
        AND market.gpu_variant = fleet.gpu_variant
        AND market.source = $reference_gpu_market_source
        AND market.lease_type = $reference_gpu_market_lease_type
    WHERE usage.date >= $start_date AND usage.date < $end_date
)

SELECT
    date,
    site_id,
    gpu_model,
    scenario,
    gpu_variant,
    gpus,
    available_gpu_hours AS gpu_hours_available,
    sold_gpu_hours AS gpu_hours_sold,
    sold_gpu_hours / nullif(available_gpu_hours, 0) AS utilisation,
    -- Hours sold at the site's own price; at the market's when it sold none to price them by.
    sold_gpu_hours * coalesce(realised_price, market_price, 0) AS revenue_usd,
    realised_price AS realised_price_usd_per_gpu_hour,
    market_price AS market_price_usd_per_gpu_hour,
    gpu_energy_mwh AS energy_mwh,
    gpu_energy_mwh * avg_power_price_usd_per_mwh AS energy_cost_usd,
    revenue_usd - energy_cost_usd AS margin_usd,
    site_gpus_per_mw AS gpus_per_mw,
    CAST(floor(grid_capacity_mw * site_gpus_per_mw) AS BIGINT) AS grid_capacity_gpus
FROM scenario_days
