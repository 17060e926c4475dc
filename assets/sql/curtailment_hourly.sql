-- description: >-
--   Hourly curtailment per site and scenario: run the miners only in hours whose power price is below that
--   hour's breakeven (the expected revenue of a MWh at the day's hashprice and the fleet's
--   all-in efficiency), and what that earns against running every hour at the day's operating rate.
-- group: economics
-- partition_column: ts
WITH hours AS (
    SELECT
        power.ts,
        power.site_id,
        mining.scenario,
        power.power_price_usd_per_mwh,
        -- A MWh runs 1000 / (J/TH) PH/s for an hour, which earns hashprice / 24 per PH/s.
        1000 * hashprice.hashprice_usd_per_ph_day / (24 * mining.efficiency_j_per_th)
            AS hour_breakeven_usd_per_mwh,
        -- The day's energy at its operating hashrate, drawn evenly over its 24 hours.
        mining.energy_mwh / 24 AS hour_energy_mwh
    FROM site_power_price_hourly AS power
    JOIN mining_profitability_daily AS mining
        ON mining.site_id = power.site_id AND mining.date = CAST(power.ts AS DATE)
    JOIN hashprice_daily AS hashprice
        ON hashprice.date = mining.date AND hashprice.scenario = mining.scenario
    WHERE power.ts >= CAST($start_date AS TIMESTAMPTZ)
        AND power.ts < CAST($end_date AS TIMESTAMPTZ)
),

decided AS (
    SELECT
        *,
        power_price_usd_per_mwh < hour_breakeven_usd_per_mwh AS run_miners,
        (hour_breakeven_usd_per_mwh - power_price_usd_per_mwh) * hour_energy_mwh
            AS flat_out_margin_usd
    FROM hours
)

SELECT
    ts,
    site_id,
    scenario,
    power_price_usd_per_mwh,
    hour_breakeven_usd_per_mwh AS breakeven_usd_per_mwh,
    run_miners,
    hour_energy_mwh AS energy_mwh,
    flat_out_margin_usd,
    CASE WHEN run_miners THEN flat_out_margin_usd ELSE 0 END AS margin_usd,
    CASE WHEN run_miners THEN 0 ELSE -flat_out_margin_usd END AS curtailment_saving_usd
FROM decided
