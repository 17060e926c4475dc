-- description: >-
--   Hashvalue (BTC per PH/s per day) and hashprice (USD per PH/s per day) per UTC day: what one
--   PH/s earns in a day at the day's difficulty, subsidy, average fee per block and price.
-- group: network
-- deps: [btc_network_daily]
-- partition_column: date
SELECT
    date,
    difficulty,
    blocks,
    subsidy_btc,
    fees_btc,
    price_usd,
    -- 1 PH/s finds 1e15 * 86400 / (difficulty * 2^32) blocks a day, each paying subsidy + mean fee.
    1e15 * 86400 * (subsidy_btc + fees_btc / blocks) / (difficulty * pow(2, 32))
        AS hashvalue_btc_per_ph_day,
    hashvalue_btc_per_ph_day * price_usd AS hashprice_usd_per_ph_day,
    fees_btc / (fees_btc + subsidy_btc * blocks) AS fee_share
FROM btc_network_daily
WHERE date >= $start_date AND date < $end_date
