-- The Supabase base the local stack provides must behave as a real Supabase
-- project does, since our policies and functions rely on it. These tests pass
-- unchanged against a real project (`supabase test db`).
begin;
select plan(17);

select has_role('anon', 'anon role exists');
select has_role('authenticated', 'authenticated role exists');
select has_role('service_role', 'service_role role exists');
select ok(
  (select rolbypassrls from pg_roles where rolname = 'service_role'),
  'service_role bypasses row-level security'
);
select ok(
  pg_has_role('authenticator', 'authenticated', 'member'),
  'authenticator can become authenticated'
);

-- As on a hosted project, migrations run as a `postgres` that is not a
-- superuser, so anything needing superuser fails here before it ships.
select ok(
  not (select rolsuper from pg_roles where rolname = 'postgres'),
  'postgres is not a superuser'
);
select ok(
  (select rolbypassrls and rolcreaterole from pg_roles where rolname = 'postgres'),
  'postgres keeps BYPASSRLS and CREATEROLE'
);
select is(
  (select tableowner::text from pg_tables where schemaname = 'auth' and tablename = 'users'),
  'supabase_auth_admin',
  'auth.users belongs to Supabase Auth'
);
select ok(
  (select not rolinherit and rolcanlogin from pg_roles where rolname = 'authenticator'),
  'authenticator logs in and inherits nothing'
);

-- The settings PostgREST's sessions run with.
create function pg_temp.role_setting(p_role text, p_name text) returns text
language sql stable as $$
  select split_part(c, '=', 2)
    from pg_db_role_setting s
    join pg_roles r on r.oid = s.setrole
    cross join unnest(s.setconfig) c
   where r.rolname = p_role and split_part(c, '=', 1) = p_name
$$;
select is(pg_temp.role_setting('anon', 'statement_timeout'), '3s', 'anon statements time out after 3s');
select is(pg_temp.role_setting('authenticated', 'statement_timeout'), '8s', 'authenticated statements time out after 8s');
select is(pg_temp.role_setting('authenticator', 'lock_timeout'), '8s', 'authenticator waits 8s for a lock at most');
select ok(
  pg_temp.role_setting('authenticator', 'session_preload_libraries') like '%safeupdate%',
  'every REST session preloads safeupdate'
);

-- auth.uid() and friends read the claims PostgREST sets per request.
select set_config('request.jwt.claims',
  '{"sub": "7c8a6a5e-1f0e-4c55-9a7b-2b8f3c1d9e01", "role": "authenticated", "email": "a@example.com"}',
  true);
select is(auth.uid(), '7c8a6a5e-1f0e-4c55-9a7b-2b8f3c1d9e01'::uuid, 'auth.uid() reads sub');
select is(auth.role(), 'authenticated', 'auth.role() reads role');
select is(auth.jwt() ->> 'email', 'a@example.com', 'auth.jwt() returns the claims');

select set_config('request.jwt.claims', '', true);
select is(auth.uid(), null, 'auth.uid() is null without claims');

select * from finish();
rollback;
