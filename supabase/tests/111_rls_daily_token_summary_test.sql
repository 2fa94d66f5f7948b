-- analytics.daily_token_summary: a materialized view, which row-level security
-- cannot guard, so neither anon nor signed-in users (admins included) may
-- read it at all; they get their own totals through get_usage_overview. Only
-- the service role reads it, and nobody writes it (refresh_daily_token_summary
-- refreshes it).
begin;
select plan(17);

-- Fixtures: usage for the owner, summarized.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.authenticate_as(:'owner');
select platform.record_token_usage('gpt-4o-mini', 100, 50, 'owner-event-1');
select tests.clear_authentication();
refresh materialized view analytics.daily_token_summary;

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from analytics.daily_token_summary $$,
  '42501', 'permission denied for schema analytics', 'anon cannot read the summary');
select throws_ok($$ delete from analytics.daily_token_summary $$,
  '42501', 'permission denied for schema analytics', 'anon cannot change the summary');

-- the owner of summarized usage -------------------------------------------------
select tests.authenticate_as(:'owner');

select throws_ok($$ select count(*) from analytics.daily_token_summary $$,
  '42501', 'permission denied for materialized view daily_token_summary',
  'a user cannot read the summary, not even their own rows');
select throws_ok(format($$ select total_tokens from analytics.daily_token_summary where user_id = %L $$, :'owner'),
  '42501', 'permission denied for materialized view daily_token_summary',
  'a user cannot read their own summarized rows directly');
select throws_ok($$ insert into analytics.daily_token_summary (day, user_id) values (current_date, gen_random_uuid()) $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'a user cannot insert into the summary');
select throws_ok($$ update analytics.daily_token_summary set total_tokens = 0 $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'a user cannot update the summary');
select throws_ok($$ delete from analytics.daily_token_summary $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'a user cannot delete from the summary');
select throws_ok($$ refresh materialized view analytics.daily_token_summary $$,
  '42501', 'must be owner of materialized view daily_token_summary', 'a user cannot refresh the summary');
select is((platform.get_usage_overview() -> 'totals' ->> 'total_tokens')::bigint, 150::bigint,
  'a user gets their own totals through get_usage_overview instead');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select throws_ok($$ select count(*) from analytics.daily_token_summary $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'an admin cannot read the summary directly');
select throws_ok($$ delete from analytics.daily_token_summary $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'an admin cannot change the summary');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select results_eq(format($$ select total_tokens from analytics.daily_token_summary where user_id = %L $$, :'owner'),
  $$ values (150::bigint) $$, 'the service role reads the summary');
select throws_ok($$ insert into analytics.daily_token_summary (day, user_id) values (current_date, gen_random_uuid()) $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'the service role cannot insert into the summary');
select throws_ok($$ update analytics.daily_token_summary set total_tokens = 0 $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'the service role cannot update the summary');
select throws_ok($$ delete from analytics.daily_token_summary $$,
  '42501', 'permission denied for materialized view daily_token_summary', 'the service role cannot delete from the summary');
select throws_ok($$ refresh materialized view analytics.daily_token_summary $$,
  '42501', 'must be owner of materialized view daily_token_summary',
  'the service role refreshes only through refresh_daily_token_summary');

select tests.clear_authentication();
select results_eq(format($$ select total_tokens from analytics.daily_token_summary where user_id = %L $$, :'owner'),
  $$ values (150::bigint) $$, 'the summary is unchanged');

select * from finish();
rollback;
