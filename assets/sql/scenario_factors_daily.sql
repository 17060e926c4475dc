-- description: >-
--   Per UTC day and scenario, the factors a scenario applies to the recorded data: BTC price,
--   difficulty (compounding monthly from the scenario's from_date), GPU rental prices, and the AI
--   utilisation it assumes. base is all ones.
-- group: economics
-- partition_column: date
WITH scenario_days AS (
    SELECT
        CAST(days.day AS DATE) AS date,
        scenarios.*,
        greatest(date_diff('day', scenarios.from_date, CAST(days.day AS DATE)), 0) / 30.4375
            AS months_elapsed
    FROM range($start_date, $end_date, INTERVAL 1 DAY) AS days(day)
    CROSS JOIN scenarios
)

SELECT
    date,
    scenario,
    months_elapsed,
    1 + btc_price_change_pct / 100 AS btc_price_factor,
    pow(1 + difficulty_growth_pct_per_month / 100, months_elapsed) AS difficulty_factor,
    pow(1 + gpu_price_change_pct_per_month / 100, months_elapsed) AS gpu_price_factor,
    ai_utilisation
FROM scenario_days
