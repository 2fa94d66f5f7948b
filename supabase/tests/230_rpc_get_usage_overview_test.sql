-- platform.get_usage_overview: the caller's balance and usage per day and per
-- model over a range of UTC days, read from analytics.daily_token_summary
-- (the refreshed rollup plus the deltas not yet folded), so the overview
-- always equals a from-scratch aggregate of the ledger.
begin;
select plan(33);

-- The usage part of an overview, aggregated from scratch from the ledger.
create function pg_temp.ledger_overview(p_user uuid, p_from date, p_to date) returns jsonb
language sql as $$
  with rows as (
    select (u.created_at at time zone 'UTC')::date as day, m.name as model, u.prompt_tokens,
           u.completion_tokens, u.total_tokens, u.cost
      from platform.token_usage u join platform.models m on m.id = u.model_id
     where u.user_id = p_user and (u.created_at at time zone 'UTC')::date between p_from and p_to
  ),
  by_day as (
    select day, count(*) as requests, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
           sum(total_tokens) as total_tokens, sum(cost) as cost
      from rows group by day
  ),
  by_model as (
    select model, count(*) as requests, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
           sum(total_tokens) as total_tokens, sum(cost) as cost
      from rows group by model
  ),
  by_day_model as (
    select day, model, count(*) as requests, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
           sum(total_tokens) as total_tokens, sum(cost) as cost
      from rows group by day, model
  )
  select jsonb_build_object(
    'totals', jsonb_build_object('requests', (select count(*) from rows),
      'prompt_tokens', (select coalesce(sum(prompt_tokens), 0) from rows),
      'completion_tokens', (select coalesce(sum(completion_tokens), 0) from rows),
      'total_tokens', (select coalesce(sum(total_tokens), 0) from rows),
      'cost', (select coalesce(sum(cost), 0) from rows)),
    'by_day', coalesce((select jsonb_agg(to_jsonb(d) order by d.day) from by_day d), '[]'),
    'by_model', coalesce((select jsonb_agg(to_jsonb(m) order by m.model) from by_model m), '[]'),
    'by_day_model', coalesce((select jsonb_agg(to_jsonb(r) order by r.day, r.model) from by_day_model r), '[]'))
$$;

select (now() at time zone 'UTC')::date as today \gset

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 10000);
select tests.grant_tokens(:'bob', 10000);

-- Usage recorded on earlier days (written as the superuser: the RPC stamps
-- rows with now()), kept consistent with the balance.
insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens, cost,
                                  idempotency_key, balance_after, created_at)
select :'alice', m.id, v.p, v.c, v.p + v.c, round((v.p * m.input_cost_per_1k_tokens + v.c * m.output_cost_per_1k_tokens) / 1000, 6), v.k, 0,
       (:'today'::date - v.days_ago + time '12:00') at time zone 'UTC'
  from (values ('gpt-4o-mini', 100, 0, 'old-40', 40),
               ('gpt-4o-mini', 1000, 500, 'old-2a', 2),
               ('claude-3-5-haiku', 200, 0, 'old-2b', 2),
               ('gpt-4o-mini', 300, 0, 'old-1', 1),
               ('claude-3-5-haiku', 7, 3, 'old-1-late', 1)) v(model, p, c, k, days_ago)
  join platform.models m on m.name = v.model;
update platform.token_balances set used = 2110 where user_id = :'alice';

-- Usage today, and another user's usage that must never show.
-- The helpers above are called under the API roles below; functions are not
-- executable by PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 10, 5, 'today-1') \g /dev/null
select platform.reserve_tokens(1000) \g /dev/null
select tests.authenticate_as(:'bob');
select platform.record_token_usage('gpt-4o-mini', 4000, 0, 'bob-today') \g /dev/null

-- ---------------------------------------------------------------------------
-- Before any refresh, everything comes from the ledger.
select tests.authenticate_as(:'alice');
select platform.get_usage_overview() as before_refresh \gset
select tests.clear_authentication();
select is(:'before_refresh'::jsonb - 'user_id' - 'role' - 'default_model' - 'from' - 'to' - 'balance',
  pg_temp.ledger_overview(:'alice', :'today'::date - 29, :'today'),
  'before any refresh the overview equals a from-scratch aggregate of the ledger');

-- Refresh (covers the days before today), then record more today.
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary() \g /dev/null
select tests.authenticate_as(:'alice');
select platform.record_token_usage('claude-3-5-haiku', 20, 0, 'today-2') \g /dev/null
select platform.record_token_usage('gpt-4o-mini', 1, 1, 'today-3') \g /dev/null

select platform.get_usage_overview() as overview \gset
select tests.clear_authentication();
select is((select count(*) from analytics.daily_token_rollup where user_id = :'alice'), 6::bigint,
  'the refresh folded the caller''s usage so far into the rollup, one row per day and model');
select is((select count(*) from analytics.daily_token_deltas where user_id = :'alice'), 2::bigint,
  'usage recorded after the refresh waits as deltas');
select is(:'overview'::jsonb - 'user_id' - 'role' - 'default_model' - 'from' - 'to' - 'balance',
  pg_temp.ledger_overview(:'alice', :'today'::date - 29, :'today'),
  'summary plus not-yet-summarised usage equals a from-scratch aggregate of the ledger');
select is(:'overview'::jsonb -> 'totals',
  '{"requests": 7, "prompt_tokens": 1538, "completion_tokens": 509, "total_tokens": 2047, "cost": 0.00201}'::jsonb,
  'the totals count every event of the range exactly once (summarised days and today, including today''s rows from before the refresh)');
select is(:'overview'::jsonb -> 'by_day',
  jsonb_build_array(
    jsonb_build_object('day', :'today'::date - 2, 'requests', 2, 'prompt_tokens', 1200, 'completion_tokens', 500,
                       'total_tokens', 1700, 'cost', 0.0017),
    jsonb_build_object('day', :'today'::date - 1, 'requests', 2, 'prompt_tokens', 307, 'completion_tokens', 3,
                       'total_tokens', 310, 'cost', 0.00022),
    jsonb_build_object('day', :'today'::date, 'requests', 3, 'prompt_tokens', 31, 'completion_tokens', 6,
                       'total_tokens', 37, 'cost', 0.00009)),
  'by_day lists each day of the range that has usage, in order');
select is(:'overview'::jsonb -> 'by_model',
  '[{"model": "claude-3-5-haiku", "requests": 3, "prompt_tokens": 227, "completion_tokens": 3, "total_tokens": 230, "cost": 0.00092},
    {"model": "gpt-4o-mini", "requests": 4, "prompt_tokens": 1311, "completion_tokens": 506, "total_tokens": 1817, "cost": 0.00109}]'::jsonb,
  'by_model lists each model of the range, by name');
select is(:'overview'::jsonb - 'totals' - 'by_day' - 'by_model' - 'by_day_model',
  jsonb_build_object('user_id', :'alice', 'role', 'developer', 'default_model', null,
    'from', :'today'::date - 29, 'to', :'today'::date,
    'balance', jsonb_build_object('granted', 10000, 'used', 2147, 'reserved', 1000, 'balance', 7853, 'available', 6853)),
  'the overview names the user, their role, their default model (none yet), the range (default: the last 30 days) and the balance with what is available');

-- Ranges.
select tests.authenticate_as(:'alice');
select is(platform.get_usage_overview(:'today'::date - 40, :'today'::date - 40) - 'balance' - 'user_id' - 'role' - 'default_model',
  jsonb_build_object('from', :'today'::date - 40, 'to', :'today'::date - 40) ||
  pg_temp.ledger_overview(:'alice', :'today'::date - 40, :'today'::date - 40),
  'a range of one old day shows only that day');
select is(platform.get_usage_overview(:'today'::date - 366, :'today') -> 'totals' -> 'requests', '8'::jsonb,
  'a range of 367 days (the most) includes everything in it');
select is(platform.get_usage_overview(:'today'::date - 2, :'today'::date - 1) - 'user_id' - 'role' - 'default_model' - 'from' - 'to' - 'balance',
  pg_temp.ledger_overview(:'alice', :'today'::date - 2, :'today'::date - 1),
  'a range of summarised days only equals the ledger''s aggregate');
select is(platform.get_usage_overview(:'today'::date - 1, :'today') - 'user_id' - 'role' - 'default_model' - 'from' - 'to' - 'balance',
  pg_temp.ledger_overview(:'alice', :'today'::date - 1, :'today'),
  'a range across the summary''s edge equals the ledger''s aggregate');
select is(platform.get_usage_overview(null, :'today'::date - 1) -> 'from', to_jsonb(:'today'::date - 30),
  'with only an end, the range is the 30 days up to it');
select is(platform.get_usage_overview(:'today'::date + 1, :'today'::date + 5) -> 'totals',
  '{"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0}'::jsonb,
  'a range without usage has zero totals');
select is(platform.get_usage_overview(:'today'::date + 1, :'today'::date + 5) -> 'by_day', '[]'::jsonb,
  'a range without usage has an empty by_day');
select throws_ok(format($$select platform.get_usage_overview(%L, %L)$$, :'today', :'today'::date - 1),
  'PT422', 'from must not be after to', 'a range that ends before it starts is refused');
select is(tests.refusal_code(format($$select platform.get_usage_overview(%L, %L)$$, :'today', :'today'::date - 1)),
  'invalid_range', 'a bad range carries the code invalid_range');
select throws_ok(format($$select platform.get_usage_overview(%L, %L)$$, :'today'::date - 367, :'today'),
  'PT422', 'a range covers at most 367 days', 'a range of 368 days is refused');

-- ---------------------------------------------------------------------------
-- Who may read whose overview.
select tests.authenticate_as(:'bob');
select is((platform.get_usage_overview() -> 'totals' ->> 'total_tokens')::bigint, 4000::bigint,
  'each user sees only their own usage');
select throws_ok(format($$select platform.get_usage_overview(p_user_id => %L)$$, :'alice'),
  'PT403', 'you may act only for yourself', 'a user may not read another user''s overview');
select is(tests.refusal_code(format($$select platform.get_usage_overview(p_user_id => %L)$$, :'alice')),
  'forbidden', 'the refusal carries the code forbidden');
select tests.authenticate_as(:'vera');
select is(platform.get_usage_overview() -> 'totals' -> 'requests', '0'::jsonb,
  'a viewer reads their own (empty) overview');
select throws_ok(format($$select platform.get_usage_overview(p_user_id => %L)$$, :'alice'),
  'PT403', 'you may act only for yourself', 'a viewer may not read another user''s overview');
select tests.authenticate_as(:'adam');
select is(platform.get_usage_overview(p_user_id => :'alice') - 'balance', :'overview'::jsonb - 'balance',
  'an admin reads another user''s overview');
select throws_ok($$select platform.get_usage_overview(p_user_id => '40000000-0000-4000-8000-0000000000ee')$$,
  'PT404', 'the user is not registered on the platform', 'an admin naming an unknown user is refused with 404');
select tests.authenticate_as_service_role();
select is(platform.get_usage_overview(p_user_id => :'alice') - 'balance', :'overview'::jsonb - 'balance',
  'the service role reads the overview of the user it names');
select throws_ok($$select platform.get_usage_overview()$$,
  'PT422', 'p_user_id is required when acting as the service role', 'the service role must name the user');
select tests.authenticate_as_anon();
select throws_ok($$select platform.get_usage_overview()$$,
  '42501', 'permission denied for function get_usage_overview', 'anon may not read overviews');
select tests.authenticate_as('40000000-0000-4000-8000-0000000000ee');
select throws_ok($$select platform.get_usage_overview()$$,
  'PT404', 'the user is not registered on the platform', 'a signed-in user not on the platform is refused');
-- The user's default model, as set_default_model stores it; gone when the
-- model leaves the catalogue.
select tests.authenticate_as(:'bob');
select platform.set_default_model('claude-3-5-haiku') \g /dev/null
select is(platform.get_usage_overview() ->> 'default_model', 'claude-3-5-haiku',
  'the overview names the default model the user chose');
select tests.authenticate_as(:'adam');
select is(platform.get_usage_overview(p_user_id => :'bob') - 'balance' - 'totals' - 'by_day' - 'by_model' - 'by_day_model' - 'from' - 'to',
  jsonb_build_object('user_id', :'bob', 'role', 'developer', 'default_model', 'claude-3-5-haiku'),
  'an admin reading another user''s overview sees that user''s role and default model');
select is(platform.get_usage_overview() ->> 'role', 'admin', 'an admin''s own overview says so');

select tests.authenticate_as(:'alice');
select throws_ok($$select count(*) from analytics.daily_token_summary$$,
  '42501', 'permission denied for view daily_token_summary',
  'users read the summary only through the overview');

select * from finish();
rollback;
