-- platform.users: a user reads their own row, an admin reads every row, and
-- nobody but the service role writes (the signup webhook mirrors users through
-- platform.mirror_auth_user). In particular nobody promotes themselves.
begin;
select plan(27);

-- Fixtures, as the superuser.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select count(*) as all_users from platform.users \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.users $$,
  '42501', 'permission denied for table users', 'anon cannot read users');
select throws_ok(
  $$ insert into platform.users (id, username) values (gen_random_uuid(), 'intruder') $$,
  '42501', 'permission denied for table users', 'anon cannot insert users');
select throws_ok(format('update platform.users set role = %L where id = %L', 'admin', :'owner'),
  '42501', 'permission denied for table users', 'anon cannot update users');
select throws_ok(format('delete from platform.users where id = %L', :'owner'),
  '42501', 'permission denied for table users', 'anon cannot delete users');

-- the owner of a row ------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id from platform.users $$, format('values (%L::uuid)', :'owner'),
  'a user sees exactly their own row');
select throws_ok(
  $$ insert into platform.users (id, username) values (gen_random_uuid(), 'second-self') $$,
  '42501', 'permission denied for table users', 'a user cannot insert users');
select throws_ok(format('update platform.users set role = %L where id = %L', 'admin', :'owner'),
  '42501', 'permission denied for table users', 'a user cannot make themselves an admin');
select throws_ok(format('update platform.users set username = %L where id = %L', 'renamed', :'owner'),
  '42501', 'permission denied for table users', 'a user cannot update their own row directly');
select throws_ok(format('delete from platform.users where id = %L', :'owner'),
  '42501', 'permission denied for table users', 'a user cannot delete their own row');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select is((select count(*) from platform.users where id = :'owner'), 0::bigint,
  'a stranger does not see someone else''s row');
select results_eq($$ select id from platform.users $$, format('values (%L::uuid)', :'stranger'),
  'a stranger sees only their own row');
select throws_ok(format('update platform.users set role = %L where id = %L', 'viewer', :'owner'),
  '42501', 'permission denied for table users', 'a stranger cannot update someone else''s row');
select throws_ok(format('delete from platform.users where id = %L', :'owner'),
  '42501', 'permission denied for table users', 'a stranger cannot delete someone else''s row');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.users), :all_users::bigint, 'an admin reads every user');
select throws_ok(
  $$ insert into platform.users (id, username) values (gen_random_uuid(), 'made-by-admin') $$,
  '42501', 'permission denied for table users', 'an admin cannot insert users directly');
select throws_ok(format('update platform.users set role = %L where id = %L', 'admin', :'owner'),
  '42501', 'permission denied for table users', 'an admin cannot change roles directly');
select throws_ok(format('delete from platform.users where id = %L', :'owner'),
  '42501', 'permission denied for table users', 'an admin cannot delete users directly');

-- None of that changed anything.
select tests.clear_authentication();
select is((select role from platform.users where id = :'owner'), 'developer',
  'the owner is still a developer');
select is((select username::text from platform.users where id = :'owner') like 'owner-%', true,
  'the owner''s username is unchanged');
select is((select count(*) from platform.users), :all_users::bigint, 'no user was added or removed');

-- service_role -----------------------------------------------------------------
-- A Supabase Auth user to mirror, as signup would leave it.
insert into auth.users (id, aud, role, email) values
  ('00000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'new@example.com');
select tests.authenticate_as_service_role();

select is((select count(*) from platform.users), :all_users::bigint, 'the service role reads every user');
select lives_ok(
  $$ insert into platform.users (id, username, email) values
       ('00000000-0000-4000-8000-000000000001', 'newcomer', 'new@example.com') $$,
  'the service role inserts users');
select lives_ok(
  $$ update platform.users set role = 'viewer' where id = '00000000-0000-4000-8000-000000000001' $$,
  'the service role updates users');
select lives_ok(format('delete from platform.users where id = %L', :'stranger'),
  'the service role deletes users');

select tests.clear_authentication();
select is((select role from platform.users where id = '00000000-0000-4000-8000-000000000001'), 'viewer',
  'the service role''s insert and update took effect');
select is((select count(*) from platform.users where id = :'stranger'), 0::bigint,
  'the service role''s delete took effect');
select is((select role from platform.users where id = :'owner'), 'developer',
  'the owner was never promoted');

select * from finish();
rollback;
