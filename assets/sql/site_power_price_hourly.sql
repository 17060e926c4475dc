-- description: >-
--   All-in power price per site and UTC hour under the site's contract, in USD. Index-linked:
--   the zone's day-ahead price times the latest FX rate published on or before that day, plus the
--   adder. Fixed: the contract price.
-- group: energy
-- partition_column: ts
-- lookback_days: {fx_rates_daily: 7}  # a day reads the rates of up to 7 days before it
WITH hours AS (
    SELECT range AS ts
    FROM range(CAST($start_date AS TIMESTAMPTZ), CAST($end_date AS TIMESTAMPTZ), INTERVAL 1 HOUR)
),

site_hours AS (
    SELECT
        hours.ts,
        sites.site_id,
        sites.contract_type,
        sites.adder_usd_per_mwh,
        sites.fixed_price_usd_per_mwh,
        prices.price_per_mwh AS market_price_per_mwh,
        prices.currency
    FROM sites
    CROSS JOIN hours
    LEFT JOIN energy_prices_hourly AS prices
        ON sites.contract_type = 'index_linked'
        AND prices.bidding_zone = sites.bidding_zone
        AND prices.ts = hours.ts
),

converted AS (
    SELECT
        site_hours.*,
        -- Markets quoted in USD need no rate; others take the latest rate on or before the day.
        CASE site_hours.currency WHEN 'USD' THEN 1.0 ELSE fx.usd_per_unit END AS usd_per_unit,
        fx.date AS fx_date
    FROM site_hours
    ASOF LEFT JOIN fx_rates_daily AS fx
        ON site_hours.currency = fx.currency
        AND CAST(site_hours.ts AS DATE) >= fx.date
)

SELECT
    ts,
    site_id,
    contract_type,
    market_price_per_mwh,
    currency,
    usd_per_unit,
    fx_date,
    CASE contract_type
        WHEN 'fixed' THEN fixed_price_usd_per_mwh
        ELSE market_price_per_mwh * usd_per_unit + adder_usd_per_mwh
    END AS power_price_usd_per_mwh
FROM converted
-- An index-linked site's hour without its zone's price (not published yet, or quarantined) is
-- not priced: no row, so the site's day is missing downstream and the answer names the site,
-- until the price arrives and the day is rebuilt.
WHERE contract_type = 'fixed' OR market_price_per_mwh IS NOT NULL
