-- Populate the summary once, so REFRESH ... CONCURRENTLY (which needs a
-- populated view) works from the first scheduled run. Re-running refreshes
-- it again and changes nothing; once 20261125171900_incremental_daily_summary
-- has replaced the materialized view there is nothing to refresh.
do $$
begin
  if (select c.relkind from pg_class c where c.oid = to_regclass('analytics.daily_token_summary')) = 'm' then
    refresh materialized view analytics.daily_token_summary;
  end if;
end
$$;
