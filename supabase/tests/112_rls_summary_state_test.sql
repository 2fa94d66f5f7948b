-- analytics.summary_state: when the summary was last refreshed (for
-- /v1/metrics). Internal to refresh_daily_token_summary: neither anon nor
-- signed-in users (admins included) read or write it; the service role reads
-- it and writes it only through refresh_daily_token_summary.
begin;
select plan(17);

-- Fixtures: the state a refresh leaves.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
insert into analytics.summary_state (name, refreshed_at)
values ('daily_token_summary', '2026-11-01 00:05:00+00');

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from analytics.summary_state $$,
  '42501', 'permission denied for schema analytics', 'anon cannot read the summary state');
select throws_ok($$ update analytics.summary_state set refreshed_at = '2100-01-01' $$,
  '42501', 'permission denied for schema analytics', 'anon cannot change the summary state');

-- a signed-in user ---------------------------------------------------------------
select tests.authenticate_as(:'owner');

select throws_ok($$ select count(*) from analytics.summary_state $$,
  '42501', 'permission denied for table summary_state', 'a user cannot read the summary state');
select throws_ok($$ insert into analytics.summary_state values ('other', now()) $$,
  '42501', 'permission denied for table summary_state', 'a user cannot insert summary state');
select throws_ok($$ update analytics.summary_state set refreshed_at = '2100-01-01' $$,
  '42501', 'permission denied for table summary_state', 'a user cannot move the refresh time');
select throws_ok($$ delete from analytics.summary_state $$,
  '42501', 'permission denied for table summary_state', 'a user cannot delete summary state');
select throws_ok($$ select platform.refresh_daily_token_summary() $$,
  '42501', 'permission denied for function refresh_daily_token_summary', 'a user cannot run the refresh');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select throws_ok($$ select count(*) from analytics.summary_state $$,
  '42501', 'permission denied for table summary_state', 'an admin cannot read the summary state');
select throws_ok($$ update analytics.summary_state set refreshed_at = '2100-01-01' $$,
  '42501', 'permission denied for table summary_state', 'an admin cannot move the refresh time');
select throws_ok($$ delete from analytics.summary_state $$,
  '42501', 'permission denied for table summary_state', 'an admin cannot delete summary state');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select results_eq($$ select name, refreshed_at from analytics.summary_state $$,
  $$ values ('daily_token_summary'::text, '2026-11-01 00:05:00+00'::timestamptz) $$, 'the service role reads the summary state');
select throws_ok($$ insert into analytics.summary_state values ('other', now()) $$,
  '42501', 'permission denied for table summary_state', 'the service role cannot insert summary state directly');
select throws_ok($$ update analytics.summary_state set refreshed_at = '2100-01-01' $$,
  '42501', 'permission denied for table summary_state', 'the service role cannot move the refresh time directly');
select throws_ok($$ delete from analytics.summary_state $$,
  '42501', 'permission denied for table summary_state', 'the service role cannot delete summary state');

select tests.clear_authentication();
select results_eq($$ select name, refreshed_at from analytics.summary_state $$,
  $$ values ('daily_token_summary'::text, '2026-11-01 00:05:00+00'::timestamptz) $$, 'the summary state is unchanged');

-- The one writer: refresh_daily_token_summary, as the service role.
select tests.authenticate_as_service_role();
select lives_ok($$ select platform.refresh_daily_token_summary() $$,
  'the service role refreshes through refresh_daily_token_summary');
select ok((select refreshed_at between now() and clock_timestamp() from analytics.summary_state
            where name = 'daily_token_summary'), 'which records when it ran');

select * from finish();
rollback;
