-- description: >-
--   The morning answer, per site and UTC day: margin per MWh from mining and from AI, which use
--   is better, and the uplift per MW and day of converting. AI is valued at the site's own results
--   where it hosts GPUs, else at the reference market price, GPU and utilisation of settings.yaml.
-- group: economics
-- deps: [mining_profitability_daily, ai_capacity_daily, curtailment_hourly, hashprice_daily, gpu_market_prices_daily, sites]
-- partition_column: date
WITH own_ai AS (
    SELECT date, site_id, sum(margin_usd) / sum(energy_mwh) AS own_margin_usd_per_mwh
    FROM ai_capacity_daily
    WHERE date >= $start_date AND date < $end_date
    GROUP BY ALL
),

reference_market AS (
    SELECT date, price_usd_per_gpu_hour
    FROM gpu_market_prices_daily
    WHERE gpu_model = $reference_gpu_gpu_model
        AND gpu_variant = $reference_gpu_gpu_variant
        AND source = $reference_gpu_market_source
        AND lease_type = $reference_gpu_market_lease_type
),

curtailment AS (
    SELECT CAST(ts AS DATE) AS date, site_id, sum(curtailment_saving_usd) AS curtailment_saving_usd
    FROM curtailment_hourly
    WHERE ts >= CAST($start_date AS TIMESTAMPTZ) AND ts < CAST($end_date AS TIMESTAMPTZ)
    GROUP BY ALL
)

SELECT
    mining.date,
    mining.site_id,
    mining.energy_mwh AS mining_energy_mwh,
    mining.margin_usd AS mining_margin_usd,
    -- A day without mining energy (an outage) is valued at its expected revenue per MWh.
    CASE WHEN mining.energy_mwh > 0 THEN 'realised' ELSE 'expected' END AS mining_basis,
    CASE
        WHEN mining.energy_mwh > 0 THEN mining.margin_usd / mining.energy_mwh
        ELSE 1000 * hashprice.hashprice_usd_per_ph_day / (24 * mining.efficiency_j_per_th)
            - mining.avg_power_price_usd_per_mwh
    END AS mining_margin_usd_per_mwh,
    CASE WHEN own_ai.site_id IS NULL THEN 'market_reference' ELSE 'own_fleet' END AS ai_basis,
    coalesce(
        own_ai.own_margin_usd_per_mwh,
        -- GPUs per MW = 1000 / (kW per GPU x PUE); each earns price x utilisation per hour.
        market.price_usd_per_gpu_hour * $reference_gpu_utilisation * 1000
            / ($reference_gpu_kw_per_gpu * sites.pue)
            - mining.avg_power_price_usd_per_mwh
    ) AS ai_margin_usd_per_mwh,
    CASE WHEN ai_margin_usd_per_mwh > mining_margin_usd_per_mwh THEN 'ai' ELSE 'mining' END
        AS better_use,
    (ai_margin_usd_per_mwh - mining_margin_usd_per_mwh) * 24 AS ai_uplift_usd_per_mw_day,
    coalesce(curtailment.curtailment_saving_usd, 0) AS curtailment_saving_usd
FROM mining_profitability_daily AS mining
JOIN sites USING (site_id)
JOIN hashprice_daily AS hashprice USING (date)
LEFT JOIN own_ai USING (date, site_id)
LEFT JOIN reference_market AS market USING (date)
LEFT JOIN curtailment USING (date, site_id)
WHERE mining.date >= $start_date AND mining.date < $end_date
