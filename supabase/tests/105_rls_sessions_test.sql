-- platform.sessions: a user reads, updates and deletes their own sessions and
-- opens sessions only as themselves, in projects they own; admins read every
-- session; strangers see and change nothing.
begin;
select plan(34);

-- Fixtures, as the superuser: a project and a session each for the owner and
-- the stranger.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
insert into platform.projects (owner_id, name) values (:'owner', 'owner project')
returning id as owner_project \gset
insert into platform.projects (owner_id, name) values (:'stranger', 'stranger project')
returning id as stranger_project \gset
insert into platform.sessions (project_id, user_id, title) values (:'owner_project', :'owner', 'owner session')
returning id as owner_session \gset
insert into platform.sessions (project_id, user_id, title) values (:'stranger_project', :'stranger', 'stranger session')
returning id as stranger_session \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.sessions $$,
  '42501', 'permission denied for table sessions', 'anon cannot read sessions');
select throws_ok(
  format($$ insert into platform.sessions (project_id, user_id) values (%L, %L) $$, :'owner_project', :'owner'),
  '42501', 'permission denied for table sessions', 'anon cannot open sessions');
select throws_ok($$ update platform.sessions set status = 'failed' $$,
  '42501', 'permission denied for table sessions', 'anon cannot update sessions');
select throws_ok($$ delete from platform.sessions $$,
  '42501', 'permission denied for table sessions', 'anon cannot delete sessions');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select results_eq($$ select id from platform.sessions $$, format('values (%L::uuid)', :'stranger_session'),
  'a stranger sees only their own session');
select throws_ok(
  format($$ insert into platform.sessions (project_id, user_id) values (%L, %L) $$, :'owner_project', :'stranger'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'a stranger cannot open a session in someone else''s project');
select throws_ok(
  format($$ insert into platform.sessions (project_id, user_id) values (%L, %L) $$, :'owner_project', :'owner'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'a stranger cannot open a session in someone else''s name');
with changed as (update platform.sessions set status = 'failed' where id = :'owner_session' returning 1)
select is(count(*), 0::bigint, 'a stranger''s update of someone else''s session affects no row') from changed;
with gone as (delete from platform.sessions where id = :'owner_session' returning 1)
select is(count(*), 0::bigint, 'a stranger''s delete of someone else''s session affects no row') from gone;
select throws_ok(
  format($$ update platform.sessions set project_id = %L where id = %L $$, :'owner_project', :'stranger_session'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'a stranger cannot move their session into someone else''s project');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.sessions where id in (:'owner_session', :'stranger_session')), 2::bigint,
  'an admin reads every session');
select throws_ok(
  format($$ insert into platform.sessions (project_id, user_id) values (%L, %L) $$, :'owner_project', :'owner'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'an admin cannot open a session for someone else');
select throws_ok(
  format($$ insert into platform.sessions (project_id, user_id) values (%L, %L) $$, :'owner_project', :'admin'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'an admin cannot open a session in someone else''s project');
with changed as (update platform.sessions set status = 'cancelled' where id = :'owner_session' returning 1)
select is(count(*), 0::bigint, 'an admin''s update of someone else''s session affects no row') from changed;
with gone as (delete from platform.sessions where id = :'owner_session' returning 1)
select is(count(*), 0::bigint, 'an admin''s delete of someone else''s session affects no row') from gone;

select tests.clear_authentication();
select is((select (project_id, user_id, status)::text from platform.sessions where id = :'owner_session'),
  (:'owner_project'::uuid, :'owner'::uuid, 'active')::text,
  'the owner''s session is unchanged after the stranger''s and the admin''s attempts');
select is((select project_id from platform.sessions where id = :'stranger_session'), :'stranger_project'::uuid,
  'the stranger''s session stayed in the stranger''s project');

-- the owner ----------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id from platform.sessions $$, format('values (%L::uuid)', :'owner_session'),
  'the owner sees only their own session');
select lives_ok(
  format($$ insert into platform.sessions (project_id, user_id, title) values (%L, %L, 'second') $$,
         :'owner_project', :'owner'),
  'the owner opens a session in their own project');
select throws_ok(
  format($$ insert into platform.sessions (project_id, user_id) values (%L, %L) $$, :'stranger_project', :'owner'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'the owner cannot open a session in someone else''s project');
with changed as (
  update platform.sessions set status = 'completed', ended_at = now() where id = :'owner_session' returning 1)
select is(count(*), 1::bigint, 'the owner updates their own session') from changed;
select throws_ok(
  format($$ update platform.sessions set project_id = %L where id = %L $$, :'stranger_project', :'owner_session'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'the owner cannot move their session into someone else''s project');
select throws_ok(
  format($$ update platform.sessions set user_id = %L where id = %L $$, :'stranger', :'owner_session'),
  '42501', 'new row violates row-level security policy for table "sessions"',
  'the owner cannot hand their session to someone else');
with changed as (update platform.sessions set status = 'failed' where id = :'stranger_session' returning 1)
select is(count(*), 0::bigint, 'the owner''s update of someone else''s session affects no row') from changed;
with gone as (delete from platform.sessions where id = :'stranger_session' returning 1)
select is(count(*), 0::bigint, 'the owner''s delete of someone else''s session affects no row') from gone;
with gone as (delete from platform.sessions where title = 'second' returning 1)
select is(count(*), 1::bigint, 'the owner deletes their own session') from gone;

select tests.clear_authentication();
select is((select (user_id, status)::text from platform.sessions where id = :'owner_session'),
  (:'owner'::uuid, 'completed')::text, 'the owner''s update took effect, and the session is still theirs');
select is((select (project_id, status)::text from platform.sessions where id = :'stranger_session'),
  (:'stranger_project'::uuid, 'active')::text, 'the stranger''s session is untouched');
select is((select count(*) from platform.sessions), 2::bigint,
  'exactly the two fixture sessions remain: every refused insert left nothing');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.sessions), 2::bigint, 'the service role reads every session');
select lives_ok(
  format($$ insert into platform.sessions (project_id, user_id, title) values (%L, %L, 'provisioned') $$,
         :'stranger_project', :'stranger'),
  'the service role opens sessions for any user');
select lives_ok(format($$ update platform.sessions set status = 'cancelled', ended_at = now() where id = %L $$, :'stranger_session'),
  'the service role updates any session');
select lives_ok(format($$ delete from platform.sessions where id = %L $$, :'owner_session'),
  'the service role deletes any session');

select tests.clear_authentication();
select results_eq($$ select title, status from platform.sessions order by title $$,
  $$ values ('provisioned'::text, 'active'::text), ('stranger session', 'cancelled') $$,
  'the service role''s insert, update and delete took effect');

select * from finish();
rollback;
