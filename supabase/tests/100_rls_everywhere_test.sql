-- Rules that hold for every object in the data layer's schemas (platform,
-- telemetry, analytics), read from the catalogue so that a table, view or
-- function added later without the same care fails here:
--   * every table has row-level security enabled;
--   * nothing RLS cannot guard (a view, a materialized view) is readable by anon or authenticated;
--   * every policy names the roles it applies to;
--   * anon and authenticated hold exactly the table and column privileges listed here,
--     and the service role writes only the tables listed here;
--   * no function is executable by PUBLIC, none by anon but is_admin(), is_service_role()
--     and list_models(), and authenticated and service_role execute exactly the RPCs listed
--     here; these function rules cover every schema the API can reach: the exposed ones
--     (public, graphql_public, platform: config.toml [api] schemas) and telemetry and
--     analytics, counting every function but extensions' own (pg_depend deptype 'e');
--   * a function created in those schemas after the migrations is executable by nobody
--     until a grant says so (the global default privilege, not a per-schema one, is what
--     PostgreSQL consults for PUBLIC);
--   * every security definer function pins search_path to ''.
-- The per-table files (1xx_rls_<table>_test.sql) test what these privileges mean row by row.
begin;
select plan(21);

-- Row-level security -----------------------------------------------------------

select cmp_ok(
  (select count(*)::int from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('platform', 'telemetry', 'analytics') and c.relkind in ('r', 'p')),
  '>=', 11, 'the catalogue query finds the data layer''s tables');

select is_empty(
  $$ select format('%I.%I', n.nspname, c.relname)
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname in ('platform', 'telemetry', 'analytics')
        and c.relkind in ('r', 'p')
        and not c.relrowsecurity $$,
  'every table in platform, telemetry and analytics has row-level security enabled');

select is_empty(
  $$ select format('%I.%I as %s', n.nspname, c.relname, r.role)
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      cross join (values ('anon'), ('authenticated')) as r(role)
      where n.nspname in ('platform', 'telemetry', 'analytics')
        and (c.relkind in ('m', 'f')
             or (c.relkind = 'v' and not coalesce(c.reloptions @> array['security_invoker=true'], false)))
        and has_any_column_privilege(r.role, c.oid, 'SELECT') $$,
  'no view, materialized view or foreign table (which RLS does not guard) is readable by anon or authenticated');

select is_empty(
  $$ select format('%I.%I: %s', schemaname, tablename, policyname)
       from pg_policies
      where schemaname in ('platform', 'telemetry', 'analytics') and 'public' = any (roles) $$,
  'every policy names the roles it applies to (none applies to PUBLIC)');

-- Schemas ---------------------------------------------------------------------

select ok(not has_schema_privilege('anon', 'telemetry', 'USAGE')
          and not has_schema_privilege('anon', 'analytics', 'USAGE'),
  'anon cannot reach the telemetry and analytics schemas');

select is_empty(
  $$ select format('%s on %s', r.role, s.schema)
       from (values ('anon'), ('authenticated'), ('service_role')) as r(role)
      cross join (values ('platform'), ('telemetry'), ('analytics')) as s(schema)
      where has_schema_privilege(r.role, s.schema, 'CREATE') $$,
  'no API role can create objects in the data layer''s schemas');

-- Table and column privileges ----------------------------------------------------

create temporary view table_privileges as
select r.role, format('%I.%I', n.nspname, c.relname) as relation, p.privilege
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 cross join (values ('anon'), ('authenticated'), ('service_role')) as r(role)
 cross join (values ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) as p(privilege)
 where n.nspname in ('platform', 'telemetry', 'analytics')
   and c.relkind in ('r', 'p', 'v', 'm', 'f')
   and has_table_privilege(r.role, c.oid, p.privilege);

select set_eq(
  $$ select relation, privilege from table_privileges where role = 'anon' $$,
  $$ values ('platform.models', 'SELECT') $$,
  'anon holds exactly: SELECT on platform.models');

select set_eq(
  $$ select relation, privilege from table_privileges where role = 'authenticated' $$,
  $$ values ('platform.models', 'SELECT'),
            ('platform.users', 'SELECT'),
            ('platform.projects', 'SELECT'), ('platform.projects', 'INSERT'),
            ('platform.projects', 'UPDATE'), ('platform.projects', 'DELETE'),
            ('platform.sessions', 'SELECT'), ('platform.sessions', 'INSERT'),
            ('platform.sessions', 'UPDATE'), ('platform.sessions', 'DELETE'),
            ('platform.token_balances', 'SELECT'),
            ('platform.token_usage', 'SELECT'),
            ('platform.token_grants', 'SELECT'),
            ('platform.token_reservations', 'SELECT'),
            ('platform.usage_rejections', 'SELECT'),
            ('telemetry.execution_metrics', 'SELECT') $$,
  'authenticated holds exactly the table privileges its policies are written for');

select set_eq(
  $$ select relation from table_privileges
      where role = 'service_role' and privilege in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
      group by relation $$,
  $$ values ('platform.models'), ('platform.users'), ('platform.api_keys'),
            ('platform.projects'), ('platform.sessions') $$,
  'the service role writes directly only models, users, api_keys, projects and sessions (ledgers, telemetry and analytics only through RPCs)');

select set_eq(
  $$ select format('%I.%I', n.nspname, c.relname), a.attname::text, acl.privilege_type
       from pg_attribute a
       join pg_class c on c.oid = a.attrelid
       join pg_namespace n on n.oid = c.relnamespace
      cross join lateral aclexplode(a.attacl) acl
      where n.nspname in ('platform', 'telemetry', 'analytics')
        and a.attacl is not null
        and acl.grantee in (0, 'anon'::regrole, 'authenticated'::regrole) $$,
  $$ select 'platform.api_keys' as relation, col, 'SELECT' as privilege
       from unnest(array['id', 'user_id', 'name', 'prefix', 'scopes', 'created_at',
                         'last_used_at', 'expires_at', 'revoked_at']) as col $$,
  'the only column privileges are SELECT on api_keys'' columns, to authenticated');

select ok(not has_column_privilege('authenticated', 'platform.api_keys', 'secret_hash', 'SELECT'),
  'authenticated cannot read api_keys.secret_hash');

-- Functions ---------------------------------------------------------------------

-- Every function the API can reach that the migrations made: the exposed
-- schemas plus telemetry and analytics, without the members of extensions.
create temporary view api_functions as
-- (schema-qualified even for public, which is on the search path)
select p.oid,
       format('%I.%I', n.nspname, p.proname)
         || substr(p.oid::regprocedure::text, strpos(p.oid::regprocedure::text, '(')) as signature,
       p.proacl, p.proowner
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
 where n.nspname in ('public', 'graphql_public', 'platform', 'telemetry', 'analytics')
   and not exists (select 1 from pg_depend d
                    where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e');

select ok(
  exists (select 1 from api_functions where signature = 'public.cds_deployment_report()')
  and exists (select 1 from api_functions where signature = 'analytics.append_usage_deltas()'),
  'the catalogue query finds our functions in public and analytics, not only platform');

select is_empty(
  $$ select f.signature
       from api_functions f
      cross join lateral aclexplode(coalesce(f.proacl, acldefault('f', f.proowner))) acl
      where acl.grantee = 0 and acl.privilege_type = 'EXECUTE' $$,
  'no function in public, graphql_public, platform, telemetry or analytics is executable by PUBLIC');

select set_eq(
  $$ select signature from api_functions
      where has_function_privilege('anon', oid, 'EXECUTE') $$,
  $$ values ('platform.is_admin()'), ('platform.is_service_role()'), ('platform.list_models()') $$,
  'anon executes only is_admin(), is_service_role() and list_models()');

select set_eq(
  $$ select signature from api_functions
      where has_function_privilege('authenticated', oid, 'EXECUTE') $$,
  $$ values ('platform.is_admin()'), ('platform.is_service_role()'),
            ('platform.record_token_usage(text,bigint,bigint,text,uuid,uuid,jsonb,uuid,uuid,uuid)'),
            ('platform.record_token_usage_batch(jsonb,uuid,uuid)'),
            ('platform.reserve_tokens(bigint,integer,uuid,uuid)'),
            ('platform.release_token_reservation(uuid,uuid,uuid)'),
            ('platform.get_usage_overview(date,date,uuid)'),
            ('platform.list_usage_events(integer,bigint,bigint,uuid,uuid)'),
            ('platform.grant_user_tokens(uuid,bigint,text,text,text)'),
            ('platform.upsert_model(text,text,integer,numeric,numeric,text,jsonb,boolean)'),
            ('platform.deactivate_model(text)'),
            ('platform.set_default_model(text)'),
            ('platform.revoke_api_key(uuid)'),
            ('platform.list_api_keys()'),
            ('platform.list_models()'),
            ('platform.usage_event_status(text,uuid,uuid)'),
            ('platform.metrics_snapshot()') $$,
  'authenticated executes exactly the user-facing RPCs (no internal helper such as record_usage_row or lock_balance)');

select set_eq(
  $$ select signature from api_functions
      where has_function_privilege('service_role', oid, 'EXECUTE') $$,
  $$ values ('platform.is_admin()'), ('platform.is_service_role()'),
            ('platform.record_token_usage(text,bigint,bigint,text,uuid,uuid,jsonb,uuid,uuid,uuid)'),
            ('platform.record_token_usage_batch(jsonb,uuid,uuid)'),
            ('platform.reserve_tokens(bigint,integer,uuid,uuid)'),
            ('platform.release_token_reservation(uuid,uuid,uuid)'),
            ('platform.get_usage_overview(date,date,uuid)'),
            ('platform.list_usage_events(integer,bigint,bigint,uuid,uuid)'),
            ('platform.grant_user_tokens(uuid,bigint,text,text,text)'),
            ('platform.upsert_model(text,text,integer,numeric,numeric,text,jsonb,boolean)'),
            ('platform.deactivate_model(text)'),
            ('platform.mirror_auth_user(uuid,text,text,text,text)'),
            ('platform.deployment_status()'),
            ('platform.create_api_key(text,text,text,text[],timestamp with time zone,uuid)'),
            ('platform.resolve_api_key(text,text)'),
            ('platform.release_expired_reservations()'),
            ('platform.refresh_daily_token_summary()'),
            ('platform.record_execution_metric(text,text,numeric,integer,text,jsonb)'),
            ('platform.record_execution_metrics(jsonb)'),
            ('platform.prune_telemetry()'),
            ('platform.list_models()'),
            ('platform.record_queued_usage(jsonb)'),
            ('platform.record_usage_dead_letters(jsonb,text)'),
            ('platform.usage_event_status(text,uuid,uuid)'),
            ('platform.metrics_snapshot()'),
            ('public.cds_deployment_report()') $$,
  'the service role executes exactly the edge''s RPCs and the deployment report (no internal helper)');

select cmp_ok(
  (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'platform' and p.prosecdef),
  '>', 0, 'the catalogue query finds platform''s security definer functions');

select is_empty(
  $$ select p.oid::regprocedure::text
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('platform', 'telemetry', 'analytics')
        and p.prosecdef
        and not coalesce(p.proconfig @> array['search_path=""'], false) $$,
  'every security definer function sets search_path = ''''');

-- Functions made after the migrations ------------------------------------------------

-- As a later migration would, `postgres` creates a function in each of our
-- schemas without granting anything: nobody but its owner may call it.
create function platform.later_function() returns int language sql as 'select 1';
create function telemetry.later_function() returns int language sql as 'select 1';
create function analytics.later_function() returns int language sql as 'select 1';
create function public.later_function() returns int language sql as 'select 1';

select is_empty(
  $$ select format('%I.%I()', p.pronamespace::regnamespace, p.proname)
       from pg_proc p
      cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl
      where p.proname = 'later_function'
        and acl.grantee = 0 and acl.privilege_type = 'EXECUTE' $$,
  'a function postgres creates after the migrations (platform, telemetry, analytics, public) is not executable by PUBLIC');

select is_empty(
  $$ select format('%I.%I() by %s', p.pronamespace::regnamespace, p.proname, r.role)
       from pg_proc p
      cross join (values ('anon'), ('authenticated'), ('service_role')) as r(role)
      where p.proname = 'later_function'
        and p.pronamespace in ('platform'::regnamespace, 'telemetry'::regnamespace, 'analytics'::regnamespace)
        and has_function_privilege(r.role, p.oid, 'EXECUTE') $$,
  'a function postgres creates in platform, telemetry or analytics after the migrations is executable by no API role until granted');

select ok(not has_function_privilege('anon', 'platform.later_function()', 'EXECUTE'),
  'anon cannot execute a function postgres creates in platform after the migrations');

select * from finish();
rollback;
