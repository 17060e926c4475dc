-- description: >-
--   Power price per site and UTC day, the plain mean of its 24 hourly all-in prices: the price of
--   energy drawn evenly over the day, as a fleet running around the clock draws it.
-- group: energy
-- partition_column: date
SELECT
    CAST(ts AS DATE) AS date,
    site_id,
    count(*) AS hours_priced,
    avg(power_price_usd_per_mwh) AS avg_power_price_usd_per_mwh,
    min(power_price_usd_per_mwh) AS min_power_price_usd_per_mwh,
    max(power_price_usd_per_mwh) AS max_power_price_usd_per_mwh
FROM site_power_price_hourly
WHERE ts >= CAST($start_date AS TIMESTAMPTZ) AND ts < CAST($end_date AS TIMESTAMPTZ)
GROUP BY ALL
-- A day with an hour unpriced has no price (its energy cost would be wrong): no row, so the
-- answer names the site as lacking the day until the hour is priced and the day rebuilt.
HAVING count(power_price_usd_per_mwh) = 24
