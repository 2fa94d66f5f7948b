-- Populate the summary once, so REFRESH ... CONCURRENTLY (which needs a
-- populated view) works from the first scheduled run. Re-running refreshes
-- it again and changes nothing.
refresh materialized view analytics.daily_token_summary;
