-- description: >-
--   The morning answer for analysts: per site, its latest UTC day in the base scenario, mining
--   against AI margin per MWh (before and after depreciation), the better use and the payback.
-- group: serving
SELECT
    economics.site_id,
    sites.name AS site_name,
    sites.bidding_zone,
    economics.date,
    economics.mining_margin_usd_per_mwh,
    economics.ai_margin_usd_per_mwh,
    economics.better_use,
    economics.mining_margin_after_depreciation_usd_per_mwh,
    economics.ai_margin_after_depreciation_usd_per_mwh,
    economics.better_use_after_depreciation,
    economics.ai_uplift_usd_per_mw_day,
    economics.conversion_payback_years,
    economics.ai_basis
FROM site_economics_daily AS economics
JOIN sites USING (site_id)
WHERE economics.scenario = 'base'
QUALIFY row_number() OVER (PARTITION BY economics.site_id ORDER BY economics.date DESC) = 1
