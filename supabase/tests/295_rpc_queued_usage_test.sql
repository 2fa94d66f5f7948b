-- The usage queue's RPCs: record_queued_usage (one delivered batch, many
-- users), record_usage_dead_letters, usage_event_status, and the
-- usage_rejections table they keep.
begin;
select plan(33);

delete from telemetry.queue_batches;
select tests.create_user('q-alice@example.test') as alice \gset
select tests.create_user('q-bob@example.test') as bob \gset
select tests.create_user('q-viewer@example.test', 'viewer') as viewer \gset
select tests.create_user('q-admin@example.test', 'admin') as admin \gset
select tests.grant_tokens(:'alice', 10000);
select tests.grant_tokens(:'bob', 10000);
select gen_random_uuid() as ghost \gset

create function pg_temp.msg(p_user uuid, p_key text, p_model text default 'gpt-4o-mini',
                            p_prompt int default 10, p_completion int default 5) returns jsonb
language sql as $$
  select jsonb_build_object('user_id', p_user, 'accepted_at_ms', extract(epoch from now()) * 1000 - 2000,
    'event', jsonb_build_object('idempotency_key', p_key, 'model', p_model,
                                'prompt_tokens', p_prompt, 'completion_tokens', p_completion))
$$;

-- ---------------------------------------------------------------------------
-- The helpers above are called under the API roles below; functions are not
-- executable by PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

select tests.authenticate_as_service_role();
select platform.record_queued_usage(jsonb_build_array(
  pg_temp.msg(:'alice', 'a-1'),
  pg_temp.msg(:'bob', 'b-1', 'claude-3-5-haiku', 100, 0),
  pg_temp.msg(:'alice', 'a-bad-model', 'no-such-model'),
  pg_temp.msg(:'ghost', 'g-1'),
  pg_temp.msg(:'viewer', 'v-1'),
  pg_temp.msg(:'alice', 'a-1'),
  pg_temp.msg(:'alice', 'a-2', 'gpt-4o-mini', 1, 1)
)) as answer \gset

select is(:'answer'::jsonb - 'rejections' - 'lag_ms',
  '{"messages": 7, "recorded": 3, "replayed": 1, "rejected": 3}'::jsonb,
  'one call records a batch of several users: 3 recorded, the duplicate replayed, 3 rejected');
select is((select array_agg(k order by k) from jsonb_object_keys(:'answer'::jsonb) k),
  '{lag_ms,messages,recorded,rejected,rejections,replayed}'::text[],
  'the answer is the counts and the rejections: no answer per event (the consumer reads none)');
select is((select jsonb_agg(jsonb_build_array(r -> 'index', r -> 'idempotency_key', r -> 'error' -> 'code'))
             from jsonb_array_elements(:'answer'::jsonb -> 'rejections') r),
  '[[2, "a-bad-model", "unknown_model"], [3, "g-1", "unknown_user"], [4, "v-1", "forbidden"]]'::jsonb,
  'only the rejected events are answered, in order, each with its position and reason: '
  'unknown model, unknown user, a viewer spending');
select ok((:'answer'::jsonb ->> 'lag_ms')::numeric >= 2000, 'the answer reports the oldest message''s lag');
select tests.clear_authentication();
select results_eq(
  format($$select user_id, idempotency_key, total_tokens from platform.token_usage
            where user_id in (%L, %L) order by idempotency_key$$, :'alice', :'bob'),
  format($$values (%L::uuid, 'a-1'::text, 15::bigint), (%L, 'a-2', 2), (%L, 'b-1', 100)$$, :'alice', :'alice', :'bob'),
  'the ledger holds each recorded event once');
select results_eq(
  format($$select used from platform.token_balances where user_id in (%L, %L) order by user_id = %L desc$$,
         :'alice', :'bob', :'alice'),
  $$values (17::bigint), (100::bigint)$$, 'balances are debited once per event');
select results_eq(
  $$select idempotency_key, source, code from platform.usage_rejections order by idempotency_key$$,
  $$values ('a-bad-model'::text, 'queue'::text, 'unknown_model'::text), ('g-1', 'queue', 'unknown_user'),
           ('v-1', 'queue', 'forbidden')$$,
  'every refusal is kept in usage_rejections with its reason');
select results_eq(
  $$select messages, recorded, replayed, rejected from telemetry.queue_batches$$,
  $$values (7, 3, 1, 3)$$,
  'each consumed batch is recorded in telemetry.queue_batches');

-- Redelivery of the same batch (a consumer retry) changes nothing.
select tests.authenticate_as_service_role();
select is(platform.record_queued_usage(jsonb_build_array(
  pg_temp.msg(:'alice', 'a-1'), pg_temp.msg(:'alice', 'a-bad-model', 'no-such-model'),
  pg_temp.msg(:'bob', 'b-1', 'claude-3-5-haiku', 100, 0)))::jsonb - 'rejections' - 'lag_ms',
  '{"messages": 3, "recorded": 0, "replayed": 2, "rejected": 1}'::jsonb,
  'a redelivered batch replays what was recorded and rejects again what was rejected');
select tests.clear_authentication();
select is((select count(*) from platform.token_usage where user_id in (:'alice', :'bob')), 3::bigint,
  'a redelivered batch adds no ledger row');
select is((select count(*) from platform.usage_rejections), 3::bigint, 'nor a second rejection');

-- A delivery with more events for one user than one batch RPC call takes.
select tests.authenticate_as_service_role();
select is(platform.record_queued_usage(
  (select jsonb_agg(pg_temp.msg(:'bob', 'bulk-' || n, 'gpt-4o-mini', 1, 0)) from generate_series(1, 1001) n))::jsonb
  - 'rejections' - 'lag_ms',
  '{"messages": 1001, "recorded": 1001, "replayed": 0, "rejected": 0}'::jsonb,
  'more events for one user than the batch RPC takes at once are recorded in chunks');
select tests.clear_authentication();
select is((select count(*) from platform.token_usage where user_id = :'bob' and idempotency_key like 'bulk-%'),
  1001::bigint, 'every one of them once');

-- Dead letters.
select tests.authenticate_as_service_role();
select is(platform.record_usage_dead_letters(jsonb_build_array(
  pg_temp.msg(:'alice', 'a-dead'), pg_temp.msg(:'alice', 'a-1')), 'retries exhausted'),
  '{"messages": 2, "dead_lettered": 1}'::jsonb,
  'a dead letter becomes a rejection unless its event was recorded after all');
select is(platform.record_usage_dead_letters(jsonb_build_array(pg_temp.msg(:'alice', 'a-dead')), 'again'),
  '{"messages": 1, "dead_lettered": 0}'::jsonb, 'a dead letter delivered twice is kept once');
select tests.clear_authentication();
select results_eq($$select source, code, message from platform.usage_rejections where idempotency_key = 'a-dead'$$,
  $$values ('dead_letter'::text, 'dead_lettered'::text, 'retries exhausted'::text)$$,
  'the dead letter is kept with its reason');

-- A delivery as the consumer sends it: each message names its user, key and
-- acceptance time once for all its events; single events and messages mix.
select tests.authenticate_as_service_role();
select platform.record_queued_usage(jsonb_build_array(
  jsonb_build_object('user_id', :'alice', 'accepted_at_ms', extract(epoch from now()) * 1000 - 1000,
    'events', jsonb_build_array(
      jsonb_build_object('idempotency_key', 'm-1', 'model', 'gpt-4o-mini', 'prompt_tokens', 3, 'completion_tokens', 1),
      jsonb_build_object('idempotency_key', 'm-2', 'model', 'no-such-model', 'prompt_tokens', 3, 'completion_tokens', 1))),
  pg_temp.msg(:'bob', 'm-3'),
  jsonb_build_object('user_id', :'bob', 'events', jsonb_build_array(
    jsonb_build_object('idempotency_key', 'm-4', 'model', 'gpt-4o-mini', 'prompt_tokens', 2, 'completion_tokens', 2),
    jsonb_build_object('idempotency_key', 'm-1', 'model', 'gpt-4o-mini', 'prompt_tokens', 3, 'completion_tokens', 1)))
))::jsonb as grouped \gset
select is(:'grouped'::jsonb - 'rejections' - 'lag_ms', '{"messages": 5, "recorded": 4, "replayed": 0, "rejected": 1}'::jsonb,
  'the events of a message are recorded as single events are, and counted as events');
select is((select jsonb_agg(jsonb_build_array(r -> 'index', r -> 'idempotency_key', r -> 'error' -> 'code'))
             from jsonb_array_elements(:'grouped'::jsonb -> 'rejections') r),
  '[[1, "m-2", "unknown_model"]]'::jsonb,
  'a rejection''s position counts events, not messages');
select is(platform.record_usage_dead_letters(jsonb_build_array(jsonb_build_object('user_id', :'alice',
    'events', jsonb_build_array(jsonb_build_object('idempotency_key', 'm-dead'),
                                jsonb_build_object('idempotency_key', 'm-1')))), 'gave up'),
  '{"messages": 2, "dead_lettered": 1}'::jsonb, 'a dead-lettered message keeps each of its events not recorded');
select tests.clear_authentication();
select results_eq(
  $$select u.user_id, u.idempotency_key, u.total_tokens from platform.token_usage u
     where u.idempotency_key like 'm-%' order by 2, 1$$,
  format($$values (%L::uuid, 'm-1'::text, 4::bigint), (%L::uuid, 'm-1'::text, 4::bigint),
                  (%L::uuid, 'm-3'::text, 15::bigint), (%L::uuid, 'm-4'::text, 4::bigint)$$,
         least(:'alice'::uuid, :'bob'::uuid), greatest(:'alice'::uuid, :'bob'::uuid), :'bob', :'bob'),
  'each event of a message is written for the message''s user, once');
select results_eq(
  $$select idempotency_key, source, code from platform.usage_rejections where idempotency_key like 'm-%' order by 1$$,
  $$values ('m-2'::text, 'queue'::text, 'unknown_model'::text), ('m-dead', 'dead_letter', 'dead_lettered')$$,
  'and each refusal is kept for its event');

-- Status, for the caller's own events.
select tests.authenticate_as(:'alice');
select is(platform.usage_event_status('a-1') - 'created_at' - 'usage_id' - 'balance',
  '{"status": "recorded", "idempotency_key": "a-1", "model": "gpt-4o-mini", "prompt_tokens": 10,
    "completion_tokens": 5, "total_tokens": 15, "cost": 0.000009, "exhausted": false, "reservation": null}'::jsonb,
  'a recorded event answers its ledger row');
select is(platform.usage_event_status('a-1') -> 'usage_id',
  to_jsonb((select id from platform.token_usage where user_id = :'alice' and idempotency_key = 'a-1')),
  'with the ledger id');
select is(platform.usage_event_status('a-bad-model') - 'rejected_at',
  '{"status": "rejected", "idempotency_key": "a-bad-model",
    "error": {"code": "unknown_model", "message": "unknown model ''no-such-model''"}}'::jsonb,
  'a rejected event answers the reason');
select is(platform.usage_event_status('not-yet'), '{"status": "queued", "idempotency_key": "not-yet"}'::jsonb,
  'an event neither recorded nor rejected reads as queued');
select tests.authenticate_as(:'bob');
select is(platform.usage_event_status('a-1') ->> 'status', 'queued', 'another user''s event is never shown');

-- usage_rejections under RLS.
select tests.authenticate_as(:'alice');
select is((select count(*) from platform.usage_rejections), 4::bigint, 'a user reads their own rejections only');
select throws_ok($$delete from platform.usage_rejections$$, '42501',
  'permission denied for table usage_rejections', 'and cannot remove them');
select tests.authenticate_as(:'admin');
select is((select count(*) from platform.usage_rejections), 6::bigint, 'an admin reads every rejection');

-- Only the consumer (service role) records.
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_queued_usage('[]')$$, '42501',
  'permission denied for function record_queued_usage', 'a user cannot record queued usage');
select tests.clear_authentication();
select throws_ok($$select platform.record_queued_usage('[]')$$, 'PT403',
  'only the queue consumer records queued usage', 'a caller without service-role claims is refused');

-- A message whose ids only look like UUIDs (36 dashes) is answered, never
-- cast: a cast error would fail the whole batch, retried until dead-lettered,
-- where it would fail again.
select tests.authenticate_as_service_role();
select lives_ok(
  format($$select platform.record_queued_usage(jsonb_build_array(
    jsonb_build_object('user_id', repeat('-', 36), 'api_key_id', repeat('-', 36),
                       'accepted_at_ms', 0, 'event', jsonb_build_object('idempotency_key', 'dashes',
                       'model', 'gpt-4o-mini', 'prompt_tokens', 1, 'completion_tokens', 1)),
    pg_temp.msg(%L, 'beside-the-dashes')))$$, :'alice'),
  'a batch with a malformed user id is still recorded, the malformed message rejected');
select lives_ok(
  $$select platform.record_usage_dead_letters(jsonb_build_array(
    jsonb_build_object('user_id', repeat('-', 36), 'api_key_id', repeat('-', 36),
                       'accepted_at_ms', 0, 'event', jsonb_build_object('idempotency_key', 'dashes'))),
    'gave up')$$,
  'dead letters with malformed ids are taken without an error');
select tests.clear_authentication();

select * from finish();
rollback;
