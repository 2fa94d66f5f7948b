-- Concurrent sets of usage for overlapping users: record_usage_events (the
-- batch and the queue's path) locks every balance row it touches in user id
-- order, whatever the order of the events, so two calls sharing users queue
-- instead of deadlocking.
--
-- Session `a` holds the lower user's balance lock in an open transaction.
-- Session `b` sends a queue delivery whose first message is for the higher
-- user: taking locks in message order it would hold the higher user and
-- wait for the lower one; in id order it waits for the lower one holding
-- nothing. `a` then records for the higher user in the same transaction:
-- with message order that is a deadlock (PostgreSQL aborts one of them);
-- in id order `a` goes on, commits, and `b` records after it.
--
-- As in 290, this file opens more connections with dblink, as the local
-- superuser `postgres`, and commits fixtures that it deletes at the end.
begin;
create extension if not exists dblink with schema extensions;
select plan(8);

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

-- The answer of the query sent on `p_conn`, or its error as text.
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
select pid as b_pid from extensions.dblink('b', 'select pg_backend_pid()') t(pid integer) \gset
select extensions.dblink_exec(c, 'set statement_timeout = ''30s''') from unnest(array['a', 'b']) c \g /dev/null

-- Two committed users, named by the order of their ids.
select least(x, y) as low, greatest(x, y) as high
  from (select (select id from extensions.dblink('setup',
                  format('select tests.create_user(%L)', 'lock-x-' || gen_random_uuid() || '@example.test')) t(id uuid)) as x,
               (select id from extensions.dblink('setup',
                  format('select tests.create_user(%L)', 'lock-y-' || gen_random_uuid() || '@example.test')) t(id uuid)) as y) u
\gset
select extensions.dblink_exec('setup', format($f$do $do$ begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  perform platform.grant_user_tokens(%L, 1000, 'lock fixture');
  perform platform.grant_user_tokens(%L, 1000, 'lock fixture');
end $do$ $f$, :'low', :'high')) \g /dev/null

select extensions.dblink_exec(c, $$begin; set local role service_role;
  set local request.jwt.claims = '{"role": "service_role"}'$$)
  from unnest(array['a', 'b']) c \g /dev/null

-- a: the lower user's lock, transaction left open.
select count(*) from extensions.dblink('a', format(
  $$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0,
      "idempotency_key": "a-low"}]', %L)::text$$, :'low')) t(r text) \g /dev/null

-- b: the higher user's message first.
select is(extensions.dblink_send_query('b', format($$select platform.record_queued_usage(%L)::text$$,
  jsonb_build_array(
    jsonb_build_object('user_id', :'high', 'event', jsonb_build_object('model', 'gpt-4o-mini',
      'prompt_tokens', 20, 'completion_tokens', 0, 'idempotency_key', 'b-high')),
    jsonb_build_object('user_id', :'low', 'event', jsonb_build_object('model', 'gpt-4o-mini',
      'prompt_tokens', 30, 'completion_tokens', 0, 'idempotency_key', 'b-low'))))), 1,
  'session B sends a delivery for both users, the higher id first');
select ok(pg_temp.wait_until_blocked(:'b_pid'), 'session B waits for a balance lock');

-- a: now the higher user, in the same transaction.
select extensions.dblink_send_query('a', format(
  $$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 40, "completion_tokens": 0,
      "idempotency_key": "a-high"}]', %L)::text$$, :'high')) \g /dev/null
select pg_temp.collect('a') as a_high \gset
select ok(:'a_high' not like 'error %', 'session A records for the higher user: B holds no lock A needs');
select is(pg_temp.collect_json(:'a_high') ->> 'recorded', '1', 'and its event is recorded');
select extensions.dblink_exec('a', 'commit') \g /dev/null

select pg_temp.collect('b') as b_answer \gset
select extensions.dblink_exec('b', 'commit') \g /dev/null
select ok(:'b_answer' not like 'error %', 'session B, having waited, records its delivery');
select is(pg_temp.collect_json(:'b_answer') - 'lag_ms', '{"messages": 2, "recorded": 2, "replayed": 0, "rejected": 0, "rejections": []}'::jsonb,
  'both of its events');
select results_eq(
  format($$select user_id, idempotency_key, balance_after from platform.token_usage
            where user_id in (%L, %L) order by id$$, :'low', :'high'),
  format($$values (%L::uuid, 'a-low'::text, 990::bigint), (%L, 'a-high', 960), (%L, 'b-low', 960), (%L, 'b-high', 940)$$,
         :'low', :'high', :'low', :'high'),
  'the ledger holds A''s events, then B''s (in user id order), each balance after the earlier ones');

-- ---------------------------------------------------------------------------
-- Clean up the committed fixtures.
select extensions.dblink_exec('setup', format('delete from auth.users where id in (%L, %L)', :'low', :'high')) \g /dev/null
select is((select count(*) from platform.users where id in (:'low', :'high'))
          + (select count(*) from platform.token_usage where user_id in (:'low', :'high')),
  0::bigint, 'the committed fixtures are gone');
select extensions.dblink_disconnect(c) from unnest(array['setup', 'a', 'b']) c \g /dev/null

select * from finish();
rollback;
