-- description: >-
--   AI capacity per site, UTC day and GPU model: GPU-hours available and sold, utilisation,
--   revenue against the reference market price, energy (installed GPUs at full draw, PUE included)
--   and its cost, margin, and how many GPUs the site's grid capacity could host.
-- group: economics
-- deps: [gpu_usage_daily, gpu_fleet, sites, site_power_price_daily, gpu_market_prices_daily]
-- partition_column: date
SELECT
    usage.date,
    usage.site_id,
    usage.gpu_model,
    fleet.gpu_variant,
    fleet.gpus,
    fleet.gpus * 24.0 AS gpu_hours_available,
    usage.gpu_hours_sold,
    usage.gpu_hours_sold / nullif(gpu_hours_available, 0) AS utilisation,
    usage.revenue_usd,
    usage.revenue_usd / nullif(usage.gpu_hours_sold, 0) AS realised_price_usd_per_gpu_hour,
    market.price_usd_per_gpu_hour AS market_price_usd_per_gpu_hour,
    fleet.gpus * fleet.kw_per_gpu * 24 * sites.pue / 1000 AS energy_mwh,
    energy_mwh * power.avg_power_price_usd_per_mwh AS energy_cost_usd,
    usage.revenue_usd - energy_cost_usd AS margin_usd,
    1000 / (fleet.kw_per_gpu * sites.pue) AS gpus_per_mw,
    CAST(floor(sites.grid_capacity_mw * gpus_per_mw) AS BIGINT) AS grid_capacity_gpus
FROM gpu_usage_daily AS usage
JOIN gpu_fleet AS fleet USING (site_id, gpu_model)
JOIN sites USING (site_id)
LEFT JOIN site_power_price_daily AS power USING (site_id, date)
LEFT JOIN gpu_market_prices_daily AS market
    ON market.date = usage.date
    AND market.gpu_model = fleet.gpu_model
    AND market.gpu_variant = fleet.gpu_variant
    AND market.source = $reference_gpu_market_source
    AND market.lease_type = $reference_gpu_market_lease_type
WHERE usage.date >= $start_date AND usage.date < $end_date
