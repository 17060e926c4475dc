-- description: >-
--   Hashvalue (BTC per PH/s per day) and hashprice (USD per PH/s per day) per UTC day and
--   scenario: what one PH/s earns in a day at the day's difficulty, subsidy, average fee per block
--   and price.
-- group: network
-- partition_column: date
-- plot: {title: "Hashprice, USD per PH/s per day", x: date, y: [hashprice_usd_per_ph_day], by: scenario}
WITH scenario_days AS (
    SELECT
        network.date,
        factors.scenario,
        network.difficulty * factors.difficulty_factor AS scenario_difficulty,
        network.blocks,
        network.subsidy_btc,
        network.fees_btc,
        network.price_usd * factors.btc_price_factor AS scenario_price_usd,
        factors.difficulty_factor
    FROM btc_network_daily AS network
    JOIN scenario_factors_daily AS factors USING (date)
    WHERE network.date >= $start_date AND network.date < $end_date
)

SELECT
    date,
    scenario,
    scenario_difficulty AS difficulty,
    blocks,
    subsidy_btc,
    fees_btc,
    scenario_price_usd AS price_usd,
    difficulty_factor,
    -- 1 PH/s finds 1e15 * 86400 / (difficulty * 2^32) blocks a day, each paying subsidy + mean fee.
    1e15 * 86400 * (subsidy_btc + fees_btc / blocks) / (scenario_difficulty * pow(2, 32))
        AS hashvalue_btc_per_ph_day,
    hashvalue_btc_per_ph_day * scenario_price_usd AS hashprice_usd_per_ph_day,
    fees_btc / (fees_btc + subsidy_btc * blocks) AS fee_share
FROM scenario_days
