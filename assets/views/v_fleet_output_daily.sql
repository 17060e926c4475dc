-- description: >-
--   Per site and UTC day, mining_output_daily's hashrate, uptime and energy as rolled up from
--   machine telemetry (energy with the site's PUE), beside the values the fleet software reported:
--   where they part, one of the two is wrong. The sample's telemetry covers a few hundred
--   machines, not the whole fleets, so there the two differ by design.
-- group: serving
WITH telemetry AS (
    SELECT date, site_id,
           sum(hashrate_th_s) AS hashrate_th_s,
           sum(uptime_pct * machines_reporting) / sum(machines_reporting) AS uptime_pct,
           sum(energy_mwh) AS machine_energy_mwh
    FROM fleet_health_daily
    GROUP BY ALL
)
SELECT
    telemetry.date,
    telemetry.site_id,
    telemetry.hashrate_th_s,
    telemetry.uptime_pct,
    telemetry.machine_energy_mwh * sites.pue AS energy_mwh,
    reported.hashrate_th_s AS reported_hashrate_th_s,
    reported.uptime_pct AS reported_uptime_pct,
    reported.energy_mwh AS reported_energy_mwh
FROM telemetry
JOIN sites USING (site_id)
LEFT JOIN mining_output_daily AS reported USING (date, site_id)
