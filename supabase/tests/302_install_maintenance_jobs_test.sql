-- platform.install_maintenance_jobs: schedules the nightly VACUUM ANALYZE of
-- the usage ledger only where pg_cron exists, and otherwise says so and
-- schedules nothing. Then, with a stand-in for pg_cron made in this
-- transaction, what it schedules. The stand-in part runs only where pg_cron
-- does not exist (the local stack).
begin;
select plan(8);
set local client_min_messages = error;

select to_regnamespace('cron') is null as plain \gset

select tests.authenticate_as_service_role();
select throws_ok($$ select platform.install_maintenance_jobs() $$,
  '42501', 'permission denied for function install_maintenance_jobs', 'the service role may not schedule jobs');
select tests.authenticate_as_anon();
select throws_ok($$ select platform.install_maintenance_jobs() $$,
  '42501', 'permission denied for function install_maintenance_jobs', 'anon may not schedule jobs');
select tests.clear_authentication();

select results_eq($$ select name, schedule, command from platform.maintenance_jobs() $$,
  $$ values ('cds-vacuum-analyze-token-usage'::text, '17 3 * * *'::text, 'vacuum analyze platform.token_usage'::text) $$,
  'one job: VACUUM ANALYZE of the usage ledger at 03:17 UTC');

\if :plain
select is(platform.install_maintenance_jobs(),
  '{"installed": false, "jobs": [], "missing": ["pg_cron"]}'::jsonb,
  'without pg_cron, the installer says pg_cron is missing and schedules nothing');
select hasnt_schema('cron', 'and creates nothing of pg_cron''s');

-- A stand-in for pg_cron: its job table and schedule(), which, as pg_cron's,
-- replaces a job of the same name.
create schema cron;
create table cron.job (jobid bigserial primary key, schedule text, command text, jobname text unique,
                       username text default current_user, active boolean default true);
create function cron.schedule(job_name text, schedule text, command text) returns bigint
language sql as $$
  insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
  on conflict (jobname) do update set schedule = excluded.schedule, command = excluded.command
  returning jobid
$$;
select is(platform.install_maintenance_jobs(),
  '{"installed": true, "jobs": ["cds-vacuum-analyze-token-usage"], "missing": []}'::jsonb,
  'with pg_cron, the job is scheduled');
select is(platform.install_maintenance_jobs(),
  '{"installed": true, "jobs": ["cds-vacuum-analyze-token-usage"], "missing": []}'::jsonb,
  'scheduling again is fine');
select results_eq($$ select jobname, schedule, command from cron.job $$,
  $$ values ('cds-vacuum-analyze-token-usage'::text, '17 3 * * *'::text, 'vacuum analyze platform.token_usage'::text) $$,
  'and leaves one job, as defined');
\else
select skip('pg_cron exists here: the missing-piece and stand-in checks need a database without it', 5);
\endif

select * from finish();
rollback;
