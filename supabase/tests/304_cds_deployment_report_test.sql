-- public.cds_deployment_report: what the deployment doctor reads from inside
-- the database. In `public` (exposed on every project), service role only.
begin;
select plan(8);

select tests.create_user('report@example.test', 'admin') as adam \gset
select tests.authenticate_as(:'adam');
select throws_ok($$ select public.cds_deployment_report() $$,
  '42501', 'permission denied for function cds_deployment_report', 'not even an admin user reads it');
select tests.authenticate_as_anon();
select throws_ok($$ select public.cds_deployment_report() $$,
  '42501', 'permission denied for function cds_deployment_report', 'anon may not read it');
select tests.clear_authentication();

select tests.authenticate_as_service_role();
select public.cds_deployment_report() as report \gset
select tests.clear_authentication();

select is(
  (select f -> 'args' from jsonb_array_elements(:'report'::jsonb -> 'functions') f
    where f ->> 'name' = 'record_token_usage_batch'),
  '["p_events", "p_user_id", "p_api_key_id"]'::jsonb,
  'functions are listed with their input argument names, in order');
select ok(
  not exists (select 1 from jsonb_array_elements(:'report'::jsonb -> 'functions') f
               where f ->> 'name' = 'list_api_keys' and f -> 'args' <> '[]'::jsonb),
  'output columns of a table function are not arguments');
select is((:'report'::jsonb ->> 'active_models')::bigint,
  (select count(*) from platform.models where is_active), 'the active models are counted');
select is(:'report'::jsonb -> 'role_settings' -> 'authenticated' ->> 'statement_timeout', '8s',
  'the REST roles'' settings are reported');
-- pg_prove's own session is not a REST session: safeupdate is not loaded
-- here, and the report says so (through the REST layer it says true).
select is((:'report'::jsonb ->> 'safeupdate')::boolean, false,
  'safeupdate is probed in the calling session');
select ok(:'report'::jsonb -> 'integrations' ? 'maintenance_jobs',
  'the integrations are described');

select * from finish();
rollback;
