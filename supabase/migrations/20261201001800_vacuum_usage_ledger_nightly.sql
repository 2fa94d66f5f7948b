-- The guide's maintenance advice, `VACUUM ANALYZE` of the usage ledger in quiet
-- hours, as a pg_cron job. VACUUM cannot run inside a transaction, so no RPC
-- can do it from the edge; pg_cron runs it in the database itself.
--
-- pg_cron exists on a hosted project only once enabled (Database ->
-- Extensions), and a migration that skipped without it would be recorded as
-- applied and never run again. So this file only defines functions, and the
-- operator schedules the jobs once pg_cron is enabled (see the README,
-- "Deploying"):
--   select platform.install_maintenance_jobs();
-- platform.deployment_status() reports whether they are scheduled.

-- The jobs, by name: schedule and command. 03:17 UTC: away from the hour,
-- when cron jobs everywhere pile up.
create or replace function platform.maintenance_jobs()
returns table (name text, schedule text, command text)
language sql immutable
set search_path = ''
as $$
  values ('cds-vacuum-analyze-token-usage'::text, '17 3 * * *'::text,
          'vacuum analyze platform.token_usage'::text)
$$;

-- What scheduling the jobs still needs here: `pg_cron`, or nothing.
create or replace function platform.maintenance_jobs_missing()
returns text[]
language plpgsql stable
set search_path = ''
as $$
begin
  if to_regprocedure('cron.schedule(text,text,text)') is null or to_regclass('cron.job') is null then
    return array['pg_cron'];
  end if;
  return '{}'::text[];
end
$$;

-- Schedules every job of platform.maintenance_jobs() when pg_cron exists and
-- answers {"installed": true, "jobs": [names], "missing": []}. Otherwise
-- schedules nothing and answers {"installed": false, "jobs": [], "missing":
-- ["pg_cron"]}, with a warning. pg_cron names jobs uniquely per user, so
-- calling again reschedules the same jobs, changing nothing. cron.schedule is
-- named only in the body, resolved when it runs.
create or replace function platform.install_maintenance_jobs()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_missing text[] := platform.maintenance_jobs_missing();
  v_job record;
  v_scheduled text[] := '{}';
begin
  if cardinality(v_missing) > 0 then
    raise warning 'the maintenance jobs are not scheduled; missing: %', array_to_string(v_missing, ', ')
      using hint = 'enable pg_cron (Database -> Extensions), then call this again';
    return jsonb_build_object('installed', false, 'jobs', '[]'::jsonb, 'missing', to_jsonb(v_missing));
  end if;
  for v_job in select * from platform.maintenance_jobs() loop
    perform cron.schedule(v_job.name, v_job.schedule, v_job.command);
    v_scheduled := v_scheduled || v_job.name;
  end loop;
  return jsonb_build_object('installed', true, 'jobs', to_jsonb(v_scheduled), 'missing', '[]'::jsonb);
end
$$;

revoke execute on function
  platform.maintenance_jobs(),
  platform.maintenance_jobs_missing(),
  platform.install_maintenance_jobs()
  from public, anon, authenticated, service_role;
