-- description: >-
--   Each machine's UTC day, rolled up from its 10-minute telemetry (the valid rows of
--   miner_telemetry): hashrate, energy, status counts and temperature. An interval a machine did
--   not report counts as not hashing.
-- group: fleet
-- partition_column: date
SELECT
    -- the UTC day from the epoch: a time-zone CAST of 14 million timestamps would cost seconds
    DATE '1970-01-01' + CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS date,
    machine_id,
    any_value(site_id) AS site_id,
    any_value(model) AS model,
    count(*) AS samples,
    count(*) FILTER (WHERE status = 'hashing') AS hashing_samples,
    count(*) FILTER (WHERE status = 'curtailed') AS curtailed_samples,
    count(*) FILTER (WHERE status = 'fault') AS fault_samples,
    sum(hashrate_th_s) / 144 AS hashrate_th_s,
    sum(power_w) / 6 / 1000 AS energy_kwh,
    coalesce(sum(power_w) FILTER (WHERE status = 'hashing'), 0) / 6 / 1000 AS hashing_energy_kwh,
    max(chip_temp_c) AS max_chip_temp_c,
    count(*) FILTER (WHERE chip_temp_c > 85) AS over_temp_samples
FROM new
GROUP BY epoch_us(ts) // 86400000000, machine_id
