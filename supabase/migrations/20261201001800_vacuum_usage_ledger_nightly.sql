-- The guide's maintenance advice, `VACUUM ANALYZE` of the usage ledger in quiet
-- hours, as a pg_cron job. VACUUM cannot run inside a transaction, so no RPC
-- can do it from the edge; pg_cron runs it in the database itself.
--
-- Skipped where pg_cron is not offered or cannot be enabled (it must be in
-- shared_preload_libraries; on Supabase it is, on the local stack it is not).
-- Re-running reschedules the same named job, changing nothing.
do $migration$
begin
  if not exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    raise notice 'pg_cron is not available: the nightly VACUUM ANALYZE of platform.token_usage is not scheduled';
    return;
  end if;
  begin
    create extension if not exists pg_cron;
  exception when others then
    raise notice 'pg_cron cannot be enabled here (%): the nightly VACUUM ANALYZE is not scheduled', sqlerrm;
    return;
  end;
  -- 03:17 UTC: away from the hour, when cron jobs everywhere pile up.
  perform cron.schedule('cds-vacuum-analyze-token-usage', '17 3 * * *',
                        'vacuum analyze platform.token_usage');
end
$migration$;
