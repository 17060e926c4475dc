-- description: >-
--   Fleet health per site, miner model and UTC day, from machine telemetry: machines down,
--   over-temperature hours, uptime, and efficiency (J/TH while hashing) against the model's
--   nameplate: its drift shows ageing machines and failing cooling.
-- group: fleet
-- partition_column: date
SELECT
    machine.date,
    machine.site_id,
    machine.model,
    count(*) AS machines_reporting,
    -- down: did not hash at all, and not because the site curtailed
    count(*) FILTER (WHERE machine.hashing_samples = 0
                       AND machine.curtailed_samples < machine.samples) AS machines_down,
    count(*) FILTER (WHERE machine.fault_samples > 0) AS machines_with_faults,
    sum(machine.over_temp_samples) / 6 AS over_temp_hours,
    sum(machine.hashrate_th_s) AS hashrate_th_s,
    100.0 * sum(machine.hashing_samples) / (count(*) * 144) AS uptime_pct,
    sum(machine.energy_kwh) / 1000 AS energy_mwh,
    -- J/TH = energy in joules / terahashes, both over the hashing intervals
    sum(machine.hashing_energy_kwh) * 3.6e6 / nullif(sum(machine.hashrate_th_s) * 86400, 0)
        AS efficiency_j_per_th,
    any_value(fleet.watts_per_unit / fleet.th_per_unit) AS nameplate_j_per_th,
    100 * (sum(machine.hashing_energy_kwh) * 3.6e6
           / nullif(sum(machine.hashrate_th_s) * 86400, 0)
           / any_value(fleet.watts_per_unit / fleet.th_per_unit) - 1) AS efficiency_drift_pct
FROM miner_telemetry_daily AS machine
JOIN asic_fleet AS fleet USING (site_id, model)
WHERE machine.date >= $start_date AND machine.date < $end_date
GROUP BY ALL
