-- The Supabase base the local stack provides must behave as a real Supabase
-- project does, since our policies and functions rely on it. These tests pass
-- unchanged against a real project (`supabase test db`).
begin;
select plan(9);

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
