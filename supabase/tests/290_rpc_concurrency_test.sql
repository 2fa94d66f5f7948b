-- Concurrency: what must hold when two requests race.
--   * Two sessions recording usage (or granting) with the same idempotency
--     key count it once, and both answers name the same ledger row.
--   * Two sessions reserving the last tokens cannot both succeed.
--   * A summary refresh that finds another one running is skipped.
--   * A ledger row whose transaction is still open when a refresh runs (a
--     late row, here dated yesterday) is folded by the next refresh, once.
--
-- pgTAP runs in one session, so this file opens more connections to the same
-- database with dblink (contrib): `a` and `b` race, `setup` writes committed
-- fixtures they can see (autocommit, random ids and emails) and deletes them
-- at the end. The races are made deterministic: A calls the RPC inside an open
-- transaction and so holds the user's balance lock; B sends the same call,
-- which is seen waiting on that lock; then A commits and B's answer is read.
--
-- Credentials: the connection string uses the local cluster's superuser
-- (`postgres`, password `postgres`) over TCP on this server's own port. On a
-- hosted Supabase project this file needs that project's database credentials
-- (and dblink enabled); the other test files need none.
begin;
create extension if not exists dblink with schema extensions;
select plan(24);

-- Waits (up to 20 s) until the backend `p_pid` waits for a lock.
create function pg_temp.wait_until_blocked(p_pid integer) returns boolean
language plpgsql as $$
begin
  for i in 1 .. 400 loop
    if exists (select 1 from pg_catalog.pg_locks l where l.pid = p_pid and not l.granted) then
      return true;
    end if;
    perform pg_catalog.pg_sleep(0.05);
  end loop;
  return false;
end
$$;

-- The answer of the query sent on `p_conn` (waiting for it), or its error as
-- text, so that a failing race fails its assertions instead of the file.
create function pg_temp.collect(p_conn text) returns text
language plpgsql as $$
declare
  v_answer text;
begin
  begin
    select r into v_answer from extensions.dblink_get_result(p_conn) t(r text);
  exception when others then
    v_answer := format('error %s: %s', sqlstate, sqlerrm);
  end;
  perform count(*) from extensions.dblink_get_result(p_conn, false) t(r text);
  return v_answer;
end
$$;

-- A collected answer as JSON; an error text becomes {"error": ...}.
create function pg_temp.collect_json(p_answer text) returns jsonb
language sql as $$
  select case when p_answer like 'error %' then jsonb_build_object('error', p_answer) else p_answer::jsonb end
$$;

select format('host=127.0.0.1 port=%s dbname=%s user=postgres password=postgres',
              current_setting('port'), current_database()) as connstr \gset
select extensions.dblink_connect('setup', :'connstr') \g /dev/null
select extensions.dblink_connect('a', :'connstr') \g /dev/null
select extensions.dblink_connect('b', :'connstr') \g /dev/null
select pid as a_pid from extensions.dblink('a', 'select pg_backend_pid()') t(pid integer) \gset
select pid as b_pid from extensions.dblink('b', 'select pg_backend_pid()') t(pid integer) \gset
select extensions.dblink_exec('b', 'set statement_timeout = ''30s''') \g /dev/null

-- Committed fixtures: three users with unique random emails, and their grants.
select id as racer from extensions.dblink('setup',
  format('select tests.create_user(%L)', 'race-usage-' || gen_random_uuid() || '@example.test')) t(id uuid) \gset
select id as holder from extensions.dblink('setup',
  format('select tests.create_user(%L)', 'race-hold-' || gen_random_uuid() || '@example.test')) t(id uuid) \gset
select id as grantee from extensions.dblink('setup',
  format('select tests.create_user(%L)', 'race-grant-' || gen_random_uuid() || '@example.test')) t(id uuid) \gset
select extensions.dblink_exec('setup', format($f$do $do$ begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  perform platform.grant_user_tokens(%L, 1000, 'race fixture');
  perform platform.grant_user_tokens(%L, 100, 'race fixture');
end $do$ $f$, :'racer', :'holder')) \g /dev/null

-- Each racing session acts as the service role (the edge), as PostgREST would.
select extensions.dblink_exec(c, $$begin; set local role service_role;
  set local request.jwt.claims = '{"role": "service_role"}'$$)
  from unnest(array['a', 'b']) c \g /dev/null

-- ---------------------------------------------------------------------------
-- Race 1: the same usage event, twice at once.
select format($$select platform.record_token_usage('gpt-4o-mini', 100, 50, 'race-key', p_user_id => %L)::text$$, :'racer')
  as record_call \gset
select r as a_answer from extensions.dblink('a', :'record_call') t(r text) \gset
select is(extensions.dblink_send_query('b', :'record_call'), 1, 'session B sends the same event');
select ok(pg_temp.wait_until_blocked(:'b_pid'), 'session B waits for session A''s lock on the balance');
select is(extensions.dblink_is_busy('b'), 1, 'session B has no answer while A''s transaction is open');
select extensions.dblink_exec('a', 'commit') \g /dev/null
select pg_temp.collect('b') as b_answer \gset
select extensions.dblink_exec('b', 'commit') \g /dev/null

select is(:'a_answer'::jsonb -> 'replayed', 'false'::jsonb, 'session A recorded the event');
select is(pg_temp.collect_json(:'b_answer') -> 'replayed', 'true'::jsonb, 'session B, having waited, replayed it');
select is(pg_temp.collect_json(:'b_answer') - 'replayed', :'a_answer'::jsonb - 'replayed',
  'both answers are the same answer: same usage_id, balance and created_at');
select is((select count(*) from platform.token_usage where user_id = :'racer' and idempotency_key = 'race-key'), 1::bigint,
  'the racing event is one ledger row');
select results_eq(
  format($$select used, balance from platform.token_balances where user_id = %L$$, :'racer'),
  $$values (150::bigint, 850::bigint)$$, 'the racing event is debited once');

-- ---------------------------------------------------------------------------
-- Race 2: two holds for the last 100 tokens.
select extensions.dblink_exec(c, $$begin; set local role service_role;
  set local request.jwt.claims = '{"role": "service_role"}'$$)
  from unnest(array['a', 'b']) c \g /dev/null
select format($$select platform.reserve_tokens(100, 60, %L)::text$$, :'holder') as reserve_call \gset
select r as a_hold from extensions.dblink('a', :'reserve_call') t(r text) \gset
select is(extensions.dblink_send_query('b', :'reserve_call'), 1, 'session B asks for the same last tokens');
select ok(pg_temp.wait_until_blocked(:'b_pid'), 'session B waits for session A''s hold to commit or roll back');
select extensions.dblink_exec('a', 'commit') \g /dev/null
select throws_ok($$select * from extensions.dblink_get_result('b') t(r text)$$,
  'PT402', '100 tokens requested, 0 available', 'session B is refused: the tokens are held by A');
select count(*) from extensions.dblink_get_result('b', false) t(r text) \g /dev/null
-- (COMMIT ends a failed transaction as a rollback; a hold B wrongly got is kept and seen below.)
select extensions.dblink_exec('b', 'commit') \g /dev/null

select is((:'a_hold'::jsonb ->> 'available')::bigint, 0::bigint, 'session A got the hold');
select results_eq(
  format($$select count(*), sum(tokens)::bigint from platform.token_reservations where user_id = %L and status = 'active'$$, :'holder'),
  $$values (1::bigint, 100::bigint)$$, 'exactly one hold exists for the last tokens');
select is((select reserved from platform.token_balances where user_id = :'holder'), 100::bigint,
  'reserved never exceeds the balance');

-- ---------------------------------------------------------------------------
-- Race 3: the same grant (e.g. a purchase webhook delivered twice at once).
select extensions.dblink_exec(c, $$begin; set local role service_role;
  set local request.jwt.claims = '{"role": "service_role"}'$$)
  from unnest(array['a', 'b']) c \g /dev/null
select format($$select platform.grant_user_tokens(%L, 500, 'purchase', 'order-race')::text$$, :'grantee') as grant_call \gset
select r as a_grant from extensions.dblink('a', :'grant_call') t(r text) \gset
select extensions.dblink_send_query('b', :'grant_call') \g /dev/null
select ok(pg_temp.wait_until_blocked(:'b_pid'), 'a second delivery of the grant waits for the first');
select extensions.dblink_exec('a', 'commit') \g /dev/null
select pg_temp.collect('b') as b_grant \gset
select extensions.dblink_exec('b', 'commit') \g /dev/null
select is(pg_temp.collect_json(:'b_grant') - 'replayed', :'a_grant'::jsonb - 'replayed', 'both deliveries answer the same grant');
select results_eq(
  format($$select count(*), (select granted from platform.token_balances where user_id = %L)
             from platform.token_grants where user_id = %L$$, :'grantee', :'grantee'),
  $$values (1::bigint, 500::bigint)$$, 'the racing grant is credited once');

-- ---------------------------------------------------------------------------
-- A refresh that finds another one running is skipped, not queued.
select extensions.dblink_exec('a', 'begin') \g /dev/null
select count(*) from extensions.dblink('a',
  $$select pg_advisory_xact_lock(hashtext('analytics.daily_token_summary'))$$) t(x text) \g /dev/null
select coalesce(sum(calls), 0) as skipped_before from telemetry.execution_totals
 where function_name = 'refresh_daily_token_summary' and status = 'skipped' \gset
select tests.authenticate_as_service_role();
select is(platform.refresh_daily_token_summary() ->> 'status', 'skipped',
  'a refresh while another holds the refresh lock answers skipped at once');
select tests.clear_authentication();
select is((select sum(calls) from telemetry.execution_totals
             where function_name = 'refresh_daily_token_summary' and status = 'skipped'),
  :'skipped_before'::numeric + 1, 'the skipped run is counted in telemetry, status skipped');
select extensions.dblink_exec('a', 'rollback') \g /dev/null

-- ---------------------------------------------------------------------------
-- A late row: `a` writes a ledger row dated yesterday and keeps its
-- transaction open while `b` refreshes; only the next refresh may fold it.
create function pg_temp.refresh_on(p_conn text) returns jsonb
language plpgsql as $$
declare
  v_answer text;
begin
  perform extensions.dblink_exec(p_conn, 'begin');
  perform extensions.dblink_exec(p_conn, 'set local role service_role');
  perform * from extensions.dblink(p_conn,
    $q$select set_config('request.jwt.claims', '{"role": "service_role"}', true)$q$) t(x text);
  select r into v_answer from extensions.dblink(p_conn,
    'select platform.refresh_daily_token_summary()::text') t(r text);
  perform extensions.dblink_exec(p_conn, 'commit');
  return v_answer::jsonb;
end
$$;
select pg_temp.refresh_on('b') \g /dev/null
select extensions.dblink_exec('a', 'begin') \g /dev/null
select extensions.dblink_exec('a', format(
  $$insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens, cost,
                                      idempotency_key, balance_after, created_at)
    select %L, m.id, 40, 2, 42, 0.000042, 'late-row', 0, now() - interval '1 day'
      from platform.models m where m.name = 'gpt-4o-mini'$$, :'racer')) \g /dev/null
select pg_temp.refresh_on('b') as during \gset
select is((select count(*) from analytics.daily_token_deltas where user_id = :'racer'
             and day = (now() at time zone 'UTC')::date - 1), 0::bigint,
  'a refresh while the late row''s transaction is open cannot see its delta');
select extensions.dblink_exec('a', 'commit') \g /dev/null
select is(tests.summary_mismatches('analytics.daily_token_summary', :'racer'), 0::bigint,
  'once committed, the late row is in the summary view at once');
select is(pg_temp.refresh_on('b') -> 'deltas', '1'::jsonb, 'the next refresh folds the late row''s delta');
select is(tests.summary_mismatches('analytics.daily_token_rollup', :'racer'), 0::bigint,
  'and the rollup then counts it exactly once');

-- ---------------------------------------------------------------------------
-- Clean up the committed fixtures (deleting the auth users cascades to
-- everything of theirs; the ledger trigger refuses only UPDATE).
select extensions.dblink_exec('setup',
  format('delete from auth.users where id in (%L, %L, %L)', :'racer', :'holder', :'grantee')) \g /dev/null
select is((select count(*) from platform.users where id in (:'racer', :'holder', :'grantee'))
          + (select count(*) from platform.token_usage where user_id in (:'racer', :'holder', :'grantee'))
          + (select count(*) from platform.token_reservations where user_id in (:'racer', :'holder', :'grantee')),
  0::bigint, 'the committed fixtures are gone');
select extensions.dblink_disconnect(c) from unnest(array['setup', 'a', 'b']) c \g /dev/null

select * from finish();
rollback;
