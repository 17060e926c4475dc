-- description: >-
--   The morning answer, per site, UTC day and scenario: margin per MWh from mining and from AI,
--   before and after depreciation, which use is better, the uplift per MW and day of converting,
--   and the simple payback of converting one MW. AI is valued at the site's own results where it
--   hosts GPUs, else at the reference GPU, market price and utilisation of settings.yaml.
-- group: economics
-- partition_column: date
-- plot:
--   title: "Margin per MWh by site, mining against AI (base scenario)"
--   x: date
--   y: [mining_margin_usd_per_mwh, ai_margin_usd_per_mwh]
--   by: site_id
--   where: "scenario = 'base'"
WITH own_ai AS (
    SELECT date, site_id, scenario, sum(margin_usd) / sum(energy_mwh) AS own_margin_usd_per_mwh
    FROM ai_capacity_daily
    WHERE date >= $start_date AND date < $end_date
    GROUP BY ALL
),

-- Capital cost per MW of site capacity (PUE included), and its straight-line depreciation.
mining_capex AS (
    SELECT
        site_id,
        sum(units * capex_usd_per_unit) / sum(units * watts_per_unit * pue / 1e6) AS usd_per_mw,
        sum(units * capex_usd_per_unit / depreciation_years)
            / sum(units * watts_per_unit * pue / 1e6) AS usd_per_mw_year
    FROM asic_fleet JOIN sites USING (site_id)
    GROUP BY site_id
),

ai_capex AS (
    SELECT
        sites.site_id,
        coalesce(
            sum(gpus * capex_usd_per_gpu) / sum(gpus * kw_per_gpu * pue / 1000),
            $reference_gpu_capex_usd_per_gpu * 1000 / ($reference_gpu_kw_per_gpu * sites.pue)
        ) AS usd_per_mw,
        coalesce(
            sum(gpus * capex_usd_per_gpu / gpu_fleet.depreciation_years)
                / sum(gpus * kw_per_gpu * pue / 1000),
            $reference_gpu_capex_usd_per_gpu * 1000 / ($reference_gpu_kw_per_gpu * sites.pue)
                / $reference_gpu_depreciation_years
        ) AS usd_per_mw_year
    FROM sites LEFT JOIN gpu_fleet USING (site_id)
    GROUP BY sites.site_id, sites.pue
),

reference_market AS (
    SELECT market.date, factors.scenario,
        market.price_usd_per_gpu_hour * factors.gpu_price_factor AS price_usd_per_gpu_hour,
        coalesce(factors.ai_utilisation, $reference_gpu_utilisation) AS utilisation
    FROM gpu_market_prices_daily AS market
    JOIN scenario_factors_daily AS factors USING (date)
    WHERE market.gpu_model = $reference_gpu_gpu_model
        AND market.gpu_variant = $reference_gpu_gpu_variant
        AND market.source = $reference_gpu_market_source
        AND market.lease_type = $reference_gpu_market_lease_type
),

curtailment AS (
    SELECT
        CAST(ts AS DATE) AS date,
        site_id,
        scenario,
        sum(curtailment_saving_usd) AS saving_usd
    FROM curtailment_hourly
    WHERE ts >= CAST($start_date AS TIMESTAMPTZ) AND ts < CAST($end_date AS TIMESTAMPTZ)
    GROUP BY ALL
),

per_mwh AS (
    SELECT
        mining.date,
        mining.site_id,
        mining.scenario,
        mining.energy_mwh AS mining_energy_mwh,
        mining.margin_usd AS mining_margin_usd,
        -- A day without mining energy (an outage) is valued at its expected revenue per MWh.
        CASE WHEN mining.energy_mwh > 0 THEN 'realised' ELSE 'expected' END AS mining_basis,
        CASE
            WHEN mining.energy_mwh > 0 THEN mining.margin_usd / mining.energy_mwh
            ELSE 1000 * hashprice.hashprice_usd_per_ph_day / (24 * mining.efficiency_j_per_th)
                - mining.avg_power_price_usd_per_mwh
        END AS mining_usd_per_mwh,
        CASE WHEN own_ai.site_id IS NULL THEN 'market_reference' ELSE 'own_fleet' END AS ai_basis,
        coalesce(
            own_ai.own_margin_usd_per_mwh,
            -- GPUs per MW = 1000 / (kW per GPU x PUE); each earns price x utilisation an hour.
            market.price_usd_per_gpu_hour * market.utilisation * 1000
                / ($reference_gpu_kw_per_gpu * sites.pue)
                - mining.avg_power_price_usd_per_mwh
        ) AS ai_usd_per_mwh,
        mining_capex.usd_per_mw_year / 8760 AS mining_depreciation_usd_per_mwh,
        ai_capex.usd_per_mw_year / 8760 AS ai_depreciation_usd_per_mwh,
        ai_capex.usd_per_mw AS ai_capex_usd_per_mw,
        coalesce(curtailment.saving_usd, 0) AS curtailment_saving_usd
    FROM mining_profitability_daily AS mining
    JOIN sites USING (site_id)
    JOIN hashprice_daily AS hashprice USING (date, scenario)
    JOIN mining_capex USING (site_id)
    JOIN ai_capex USING (site_id)
    LEFT JOIN own_ai USING (date, site_id, scenario)
    LEFT JOIN reference_market AS market USING (date, scenario)
    LEFT JOIN curtailment USING (date, site_id, scenario)
    WHERE mining.date >= $start_date AND mining.date < $end_date
)

SELECT
    date,
    site_id,
    scenario,
    mining_energy_mwh,
    mining_margin_usd,
    mining_basis,
    mining_usd_per_mwh AS mining_margin_usd_per_mwh,
    ai_basis,
    ai_usd_per_mwh AS ai_margin_usd_per_mwh,
    CASE WHEN ai_usd_per_mwh > mining_usd_per_mwh THEN 'ai' ELSE 'mining' END AS better_use,
    (ai_usd_per_mwh - mining_usd_per_mwh) * 24 AS ai_uplift_usd_per_mw_day,
    mining_depreciation_usd_per_mwh,
    ai_depreciation_usd_per_mwh,
    mining_usd_per_mwh - mining_depreciation_usd_per_mwh
        AS mining_margin_after_depreciation_usd_per_mwh,
    ai_usd_per_mwh - ai_depreciation_usd_per_mwh AS ai_margin_after_depreciation_usd_per_mwh,
    CASE
        WHEN ai_usd_per_mwh - ai_depreciation_usd_per_mwh
            > mining_usd_per_mwh - mining_depreciation_usd_per_mwh
        THEN 'ai' ELSE 'mining'
    END AS better_use_after_depreciation,
    ai_capex_usd_per_mw,
    -- Simple payback: GPU capex of one MW over the extra cash it earns a year; none if it earns less.
    CASE
        WHEN ai_usd_per_mwh > mining_usd_per_mwh
        THEN ai_capex_usd_per_mw / ((ai_usd_per_mwh - mining_usd_per_mwh) * 24 * 365)
    END AS conversion_payback_years,
    curtailment_saving_usd
FROM per_mwh
