-- platform.projects: owners have full CRUD on their own projects, admins read
-- every project, strangers see and change nothing, and nobody creates (or
-- moves) a project into someone else's name. RLS hides rows silently: a
-- refused UPDATE or DELETE affects no row rather than failing.
begin;
select plan(33);

-- Fixtures, as the superuser: one project each for the owner and the stranger.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
insert into platform.projects (owner_id, name) values (:'owner', 'owner project')
returning id as owner_project \gset
insert into platform.projects (owner_id, name) values (:'stranger', 'stranger project')
returning id as stranger_project \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.projects $$,
  '42501', 'permission denied for table projects', 'anon cannot read projects');
select throws_ok(format($$ insert into platform.projects (owner_id, name) values (%L, 'anon project') $$, :'owner'),
  '42501', 'permission denied for table projects', 'anon cannot insert projects');
select throws_ok($$ update platform.projects set name = 'defaced' $$,
  '42501', 'permission denied for table projects', 'anon cannot update projects');
select throws_ok($$ delete from platform.projects $$,
  '42501', 'permission denied for table projects', 'anon cannot delete projects');

-- a stranger (before the owner changes anything) ---------------------------------
select tests.authenticate_as(:'stranger');

select results_eq($$ select id from platform.projects $$, format('values (%L::uuid)', :'stranger_project'),
  'a stranger sees only their own project');
select throws_ok(format($$ insert into platform.projects (owner_id, name) values (%L, 'planted') $$, :'owner'),
  '42501', 'new row violates row-level security policy for table "projects"',
  'a stranger cannot create a project owned by someone else');
with changed as (update platform.projects set name = 'defaced' where id = :'owner_project' returning 1)
select is(count(*), 0::bigint,
  'a stranger''s update of someone else''s project affects no row') from changed;
with gone as (delete from platform.projects where id = :'owner_project' returning 1)
select is(count(*), 0::bigint,
  'a stranger''s delete of someone else''s project affects no row') from gone;
select throws_ok(format($$ update platform.projects set owner_id = %L where id = %L $$, :'owner', :'stranger_project'),
  '42501', 'new row violates row-level security policy for table "projects"',
  'a stranger cannot give their project away');

select tests.clear_authentication();
select is((select name from platform.projects where id = :'owner_project'), 'owner project',
  'the owner''s project is unchanged after the stranger''s attempts');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.projects where id in (:'owner_project', :'stranger_project')), 2::bigint,
  'an admin reads every project');
select throws_ok(format($$ insert into platform.projects (owner_id, name) values (%L, 'made by admin') $$, :'owner'),
  '42501', 'new row violates row-level security policy for table "projects"',
  'an admin cannot create a project owned by someone else');
with changed as (update platform.projects set name = 'renamed by admin' where id = :'owner_project' returning 1)
select is(count(*), 0::bigint,
  'an admin''s update of someone else''s project affects no row') from changed;
with gone as (delete from platform.projects where id = :'owner_project' returning 1)
select is(count(*), 0::bigint,
  'an admin''s delete of someone else''s project affects no row') from gone;

select tests.clear_authentication();
select is((select name from platform.projects where id = :'owner_project'), 'owner project',
  'the owner''s project is unchanged after the admin''s attempts');

-- the owner ----------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id from platform.projects $$, format('values (%L::uuid)', :'owner_project'),
  'the owner sees only their own project');
select lives_ok(format($$ insert into platform.projects (owner_id, name) values (%L, 'second project') $$, :'owner'),
  'the owner creates a project of their own');
select throws_ok(format($$ insert into platform.projects (owner_id, name) values (%L, 'gift') $$, :'stranger'),
  '42501', 'new row violates row-level security policy for table "projects"',
  'the owner cannot create a project owned by someone else');
with changed as (update platform.projects set description = 'updated' where id = :'owner_project' returning 1)
select is(count(*), 1::bigint,
  'the owner updates their own project') from changed;
select throws_ok(format($$ update platform.projects set owner_id = %L where id = %L $$, :'stranger', :'owner_project'),
  '42501', 'new row violates row-level security policy for table "projects"',
  'the owner cannot hand their project to someone else');
with changed as (update platform.projects set name = 'hijacked' where id = :'stranger_project' returning 1)
select is(count(*), 0::bigint,
  'the owner''s update of someone else''s project affects no row') from changed;
with gone as (delete from platform.projects where id = :'stranger_project' returning 1)
select is(count(*), 0::bigint,
  'the owner''s delete of someone else''s project affects no row') from gone;
with gone as (delete from platform.projects where name = 'second project' returning 1)
select is(count(*), 1::bigint,
  'the owner deletes their own project') from gone;

select tests.clear_authentication();
select is((select (owner_id, description)::text from platform.projects where id = :'owner_project'),
  (:'owner'::uuid, 'updated')::text, 'the owner''s update took effect and the owner is unchanged');
select is((select (owner_id, name)::text from platform.projects where id = :'stranger_project'),
  (:'stranger'::uuid, 'stranger project')::text, 'the stranger''s project is untouched');
select is((select count(*) from platform.projects), 2::bigint,
  'exactly the two fixture projects remain: every refused insert left nothing');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.projects), 2::bigint, 'the service role reads every project');
select lives_ok(format($$ insert into platform.projects (owner_id, name) values (%L, 'provisioned') $$, :'stranger'),
  'the service role creates a project for any user');
select lives_ok(format($$ update platform.projects set name = 'renamed' where id = %L $$, :'owner_project'),
  'the service role updates any project');
select lives_ok(format($$ delete from platform.projects where id = %L $$, :'stranger_project'),
  'the service role deletes any project');

select tests.clear_authentication();
select is((select count(*) from platform.projects where owner_id = :'stranger' and name = 'provisioned'), 1::bigint,
  'the service role''s insert took effect');
select is((select name from platform.projects where id = :'owner_project'), 'renamed',
  'the service role''s update took effect');
select is((select count(*) from platform.projects where id = :'stranger_project'), 0::bigint,
  'the service role''s delete took effect');

select * from finish();
rollback;
