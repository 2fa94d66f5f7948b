-- analytics.daily_token_summary (a view) and the two tables behind it,
-- analytics.daily_token_rollup and analytics.daily_token_deltas. Neither anon
-- nor signed-in users (admins included) read or write any of them: they get
-- their own totals through get_usage_overview. The service role reads them;
-- only the token_usage triggers and refresh_daily_token_summary write them.
begin;
select plan(24);

-- Fixtures: usage for the owner, half folded into the rollup, half pending.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.authenticate_as(:'owner');
select platform.record_token_usage('gpt-4o-mini', 100, 50, 'owner-event-1') \g /dev/null
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary() \g /dev/null
select tests.authenticate_as(:'owner');
select platform.record_token_usage('gpt-4o-mini', 10, 5, 'owner-event-2') \g /dev/null
select tests.clear_authentication();

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from analytics.daily_token_summary $$,
  '42501', 'permission denied for schema analytics', 'anon cannot read the summary');
select throws_ok($$ select count(*) from analytics.daily_token_rollup $$,
  '42501', 'permission denied for schema analytics', 'anon cannot read the rollup');
select throws_ok($$ delete from analytics.daily_token_deltas $$,
  '42501', 'permission denied for schema analytics', 'anon cannot change the deltas');

-- the owner of the usage ---------------------------------------------------------
select tests.authenticate_as(:'owner');

select throws_ok(format($$ select total_tokens from analytics.daily_token_summary where user_id = %L $$, :'owner'),
  '42501', 'permission denied for view daily_token_summary',
  'a user cannot read the summary, not even their own rows');
select throws_ok(format($$ select total_tokens from analytics.daily_token_rollup where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table daily_token_rollup', 'a user cannot read the rollup');
select throws_ok(format($$ select total_tokens from analytics.daily_token_deltas where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table daily_token_deltas', 'a user cannot read the deltas');
select throws_ok($$ insert into analytics.daily_token_summary (day, user_id) values (current_date, gen_random_uuid()) $$,
  '55000', 'cannot insert into view "daily_token_summary"', 'a user cannot insert into the summary (an aggregate view takes no writes)');
select throws_ok(format($$ insert into analytics.daily_token_deltas values (%L, current_date, 1, 1, 1000000, 0, 1000000, 0) $$, :'owner'),
  '42501', 'permission denied for table daily_token_deltas', 'a user cannot append deltas');
select throws_ok($$ update analytics.daily_token_rollup set total_tokens = 0 $$,
  '42501', 'permission denied for table daily_token_rollup', 'a user cannot update the rollup');
select throws_ok($$ delete from analytics.daily_token_deltas $$,
  '42501', 'permission denied for table daily_token_deltas', 'a user cannot delete deltas');
select is((platform.get_usage_overview() -> 'totals' ->> 'total_tokens')::bigint, 165::bigint,
  'a user gets their own totals, folded and pending, through get_usage_overview instead');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select throws_ok($$ select count(*) from analytics.daily_token_summary $$,
  '42501', 'permission denied for view daily_token_summary', 'an admin cannot read the summary directly');
select throws_ok($$ select count(*) from analytics.daily_token_rollup $$,
  '42501', 'permission denied for table daily_token_rollup', 'an admin cannot read the rollup directly');
select throws_ok($$ delete from analytics.daily_token_rollup $$,
  '42501', 'permission denied for table daily_token_rollup', 'an admin cannot change the rollup');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select results_eq(format($$ select total_tokens from analytics.daily_token_summary where user_id = %L $$, :'owner'),
  $$ values (165::bigint) $$, 'the service role reads the summary');
select results_eq(format($$ select total_tokens from analytics.daily_token_rollup where user_id = %L $$, :'owner'),
  $$ values (150::bigint) $$, 'the service role reads the rollup');
select results_eq(format($$ select total_tokens from analytics.daily_token_deltas where user_id = %L $$, :'owner'),
  $$ values (15::bigint) $$, 'the service role reads the deltas');
select throws_ok($$ insert into analytics.daily_token_summary (day, user_id) values (current_date, gen_random_uuid()) $$,
  '55000', 'cannot insert into view "daily_token_summary"', 'the service role cannot insert into the summary');
select throws_ok($$ update analytics.daily_token_rollup set total_tokens = 0 $$,
  '42501', 'permission denied for table daily_token_rollup', 'the service role cannot update the rollup');
select throws_ok($$ delete from analytics.daily_token_rollup $$,
  '42501', 'permission denied for table daily_token_rollup', 'the service role cannot delete from the rollup');
select throws_ok(format($$ insert into analytics.daily_token_deltas values (%L, current_date, 1, 1, 1, 0, 1, 0) $$, :'owner'),
  '42501', 'permission denied for table daily_token_deltas', 'the service role cannot append deltas directly');
select throws_ok($$ delete from analytics.daily_token_deltas $$,
  '42501', 'permission denied for table daily_token_deltas',
  'the service role folds deltas only through refresh_daily_token_summary');

select tests.clear_authentication();
select results_eq(format($$ select total_tokens from analytics.daily_token_summary where user_id = %L $$, :'owner'),
  $$ values (165::bigint) $$, 'the summary is unchanged');
select is((select count(*) from analytics.daily_token_deltas where user_id = :'owner'), 1::bigint,
  'the pending delta is still there');

select * from finish();
rollback;
