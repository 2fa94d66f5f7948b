-- The incremental summary's property: after any sequence of recordings
-- (single rows and multi-row statements, on any recent day, late ones
-- included), removals (a user deleted with their usage) and refreshes,
--   * analytics.daily_token_summary equals a from-scratch aggregate of the
--     ledger after every step, and
--   * right after each refresh, analytics.daily_token_rollup alone does.
-- Sequences are random but seeded, so a failure names a reproducible seed.
begin;
select plan(6);

create temp table run_log (seed int, step int, op text, summary_off bigint, rollup_off bigint);

-- One random sequence of p_steps operations over a pool of users.
create function pg_temp.run_sequence(p_seed int, p_steps int) returns void
language plpgsql as $$
declare
  v_users uuid[] := '{}';
  v_models bigint[] := array(select id from platform.models order by id);
  v_user uuid;
  v_op text;
  v_rows int;
  v_roll float8;
begin
  perform setseed(p_seed / 1000.0);
  for i in 1..4 loop
    v_users := v_users || tests.create_user(format('prop-%s-%s@example.test', p_seed, i));
  end loop;
  for step in 1..p_steps loop
    v_roll := random();
    v_user := v_users[1 + floor(random() * array_length(v_users, 1))::int];
    if v_roll < 0.65 then
      -- One statement of 1..5 rows: a multi-row insert appends one delta per key.
      v_op := 'record';
      v_rows := 1 + floor(random() * 5)::int;
      insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                        cost, idempotency_key, balance_after, created_at)
      select v_user, v_models[1 + floor(random() * array_length(v_models, 1))::int], p, c, p + c,
             round((p + c) * 0.000003, 6), format('prop-%s-%s-%s', p_seed, step, n), 0,
             -- Today or up to three days back: late rows land on old days.
             now() - make_interval(days => floor(random() * 4)::int, mins => floor(random() * 600)::int)
        from generate_series(1, v_rows) n,
             lateral (select floor(random() * 5000)::bigint p, floor(random() * 500)::bigint c) t;
    elsif v_roll < 0.9 then
      v_op := 'refresh';
      perform tests.authenticate_as_service_role();
      perform platform.refresh_daily_token_summary();
      perform tests.clear_authentication();
    else
      -- A correction: the user goes, their usage with them; a new one comes.
      v_op := 'remove user';
      delete from platform.users where id = v_user;
      v_users := array_remove(v_users, v_user)
                 || tests.create_user(format('prop-%s-%s-new@example.test', p_seed, step));
    end if;
    insert into run_log values (p_seed, step, v_op, tests.summary_mismatches('analytics.daily_token_summary'),
      case when v_op = 'refresh' then tests.summary_mismatches('analytics.daily_token_rollup') end);
  end loop;
end
$$;

select pg_temp.run_sequence(seed, 80) from generate_series(1, 6) seed;

select is((select count(*) from run_log), 480::bigint, 'six seeded sequences of 80 steps ran');
select ok((select count(distinct op) = 3 and min(n) >= 20
             from (select op, count(*) n from run_log group by op) x),
  'each sequence mixed recordings, refreshes and removals');
-- A failure names the first three steps that went wrong.
select is((select coalesce(string_agg(format('seed %s step %s (%s)', seed, step, op), ', '), 'none')
             from (select * from run_log where summary_off <> 0 order by seed, step limit 3) f),
  'none', 'after every step the summary view equals a from-scratch aggregate of the ledger');
select is((select coalesce(string_agg(format('seed %s step %s', seed, step), ', '), 'none')
             from (select * from run_log where rollup_off <> 0 order by seed, step limit 3) f),
  'none', 'after every refresh the rollup alone equals a from-scratch aggregate of the ledger');

-- A last refresh leaves nothing pending.
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary() \g /dev/null
select tests.clear_authentication();
select is((select count(*) from analytics.daily_token_deltas), 0::bigint, 'a final refresh consumes every delta');
select is(tests.summary_mismatches('analytics.daily_token_rollup'), 0::bigint, 'and leaves the rollup equal to the ledger''s aggregate');

select * from finish();
rollback;
