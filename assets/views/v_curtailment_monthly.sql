-- description: What hourly curtailment saved per site and calendar month (UTC), base scenario.
-- group: serving
SELECT
    site_id,
    CAST(date_trunc('month', ts) AS DATE) AS month,
    sum(curtailment_saving_usd) AS curtailment_saving_usd,
    count(*) FILTER (WHERE NOT run_miners) AS hours_curtailed,
    count(*) AS hours
FROM curtailment_hourly
WHERE scenario = 'base'
GROUP BY ALL
