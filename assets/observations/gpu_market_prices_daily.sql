-- description: vast.ai's prices of a day, from the offers observed during it (an offer counts once per observation).
-- group: gpu
-- partition_column: date
WITH observed AS (
    SELECT *, CAST(timezone('UTC', observed_at) AS DATE) AS date
    FROM gpu_offers_observed
    WHERE timezone('UTC', observed_at) >= $start_date AND timezone('UTC', observed_at) < $end_date
),
per_day AS (
    SELECT date, source, count(DISTINCT observed_at) AS observations
    FROM observed
    GROUP BY ALL
)
SELECT
    date,
    gpu_model,
    gpu_variant,
    lease_type,
    source,
    median(price_usd_per_gpu_hour) AS price_usd_per_gpu_hour,
    quantile_cont(price_usd_per_gpu_hour, 0.25) AS p25_usd_per_gpu_hour,
    quantile_cont(price_usd_per_gpu_hour, 0.75) AS p75_usd_per_gpu_hour,
    count(*) AS offers,
    any_value(observations) AS observations
FROM observed
JOIN per_day USING (date, source)
GROUP BY date, gpu_model, gpu_variant, lease_type, source
ORDER BY ALL
