-- description: Hashprice and hashvalue per UTC day as recorded (base scenario), with the fee share.
-- group: serving
SELECT date, subsidy_btc, fee_share, hashvalue_btc_per_ph_day, hashprice_usd_per_ph_day, price_usd
FROM hashprice_daily
WHERE scenario = 'base'
