-- platform.record_token_usage_batch: many events, one result each, in input
-- order. One event's refusal rejects only that event (with its stable code);
-- the others are recorded. Each event is idempotent on its own key.
begin;
select plan(37);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.grant_tokens(:'alice', 1000);
select tests.grant_tokens(:'bob', 1000);
insert into platform.projects (id, owner_id, name)
values ('10000000-0000-4000-8000-00000000a001', :'alice', 'alice project');
insert into platform.sessions (id, project_id, user_id)
values ('20000000-0000-4000-8000-00000000a001', '10000000-0000-4000-8000-00000000a001', :'alice');
insert into platform.api_keys (id, user_id, name, prefix, secret_hash) values
  ('30000000-0000-4000-8000-00000000a001', :'alice', 'alice key', 'cds_alice0010000000000000000',
   encode(extensions.digest('alice secret', 'sha256'), 'hex')),
  ('30000000-0000-4000-8000-00000000b001', :'bob', 'bob key', 'cds_bob000010000000000000000',
   encode(extensions.digest('bob secret', 'sha256'), 'hex'));

-- One good event, a mix of bad ones, an in-batch retry and an in-batch key reuse.
select '[
  {"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 50, "idempotency_key": "b-1", "metadata": {"n": 1}},
  {"model": "nope", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "b-2"},
  {"model": "claude-3-5-haiku", "prompt_tokens": 200, "completion_tokens": 0, "idempotency_key": "b-3",
   "project_id": "10000000-0000-4000-8000-00000000a001", "session_id": "20000000-0000-4000-8000-00000000a001"},
  {"model": "gpt-4o-mini", "prompt_tokens": -5, "completion_tokens": 1, "idempotency_key": "b-4"},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "b-5", "project_id": "not-a-uuid"},
  "not an object",
  {"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 50, "idempotency_key": "b-1", "metadata": {"n": 1}},
  {"model": "gpt-4o-mini", "prompt_tokens": 999, "completion_tokens": 50, "idempotency_key": "b-1", "metadata": {"n": 1}},
  {"model": "gpt-4o-mini", "prompt_tokens": "12", "completion_tokens": 1, "idempotency_key": "b-9"},
  {"model": "gpt-4o-mini", "prompt_tokens": 1.5, "completion_tokens": 1, "idempotency_key": "b-10"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "b-12",
   "project_id": "10000000-0000-4000-8000-0000000000ff"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "b-13", "metadata": [1]}
]' as batch \gset

select tests.authenticate_as(:'alice');
select platform.record_token_usage_batch(:'batch') as first \gset

-- ---------------------------------------------------------------------------
-- Partial acceptance.
select is(:'first'::jsonb - 'results', '{"recorded": 2, "replayed": 1, "rejected": 10}'::jsonb,
  'the batch answers how many events were recorded, replayed and rejected');
select is(
  (select jsonb_agg(jsonb_build_array(r ->> 'index', r ->> 'status') order by ord)
     from jsonb_array_elements(:'first'::jsonb -> 'results') with ordinality t(r, ord)),
  '[["0", "recorded"], ["1", "rejected"], ["2", "recorded"], ["3", "rejected"], ["4", "rejected"],
    ["5", "rejected"], ["6", "replayed"], ["7", "rejected"], ["8", "rejected"], ["9", "rejected"],
    ["10", "rejected"], ["11", "rejected"], ["12", "rejected"]]'::jsonb,
  'one result per event, in input order, each with its index and status');
select is(
  (select jsonb_agg(r -> 'error' ->> 'code' order by ord)
     from jsonb_array_elements(:'first'::jsonb -> 'results') with ordinality t(r, ord)
    where r ->> 'status' = 'rejected'),
  '["unknown_model", "invalid_token_count", "invalid_event", "invalid_event", "idempotency_key_reused",
    "invalid_token_count", "invalid_token_count", "invalid_idempotency_key", "unknown_project", "invalid_metadata"]'::jsonb,
  'each rejected event carries the stable code of its refusal');
select is(:'first'::jsonb -> 'results' -> 1 -> 'error',
  '{"code": "unknown_model", "message": "unknown model ''nope''"}'::jsonb,
  'a rejected event carries the refusal''s safe message');
select is(:'first'::jsonb -> 'results' -> 4 -> 'error',
  '{"code": "invalid_event", "message": "an id in this event is not a valid UUID"}'::jsonb,
  'a malformed id is rejected as invalid_event, not a failure of the whole batch');
select is(:'first'::jsonb -> 'results' -> 5 -> 'error',
  '{"code": "invalid_event", "message": "each event must be a JSON object"}'::jsonb,
  'an event that is not an object is rejected as invalid_event');
select is(:'first'::jsonb -> 'results' -> 8 -> 'error' ->> 'message', 'prompt_tokens must be a whole number',
  'a token count sent as a string is rejected');
select is(:'first'::jsonb -> 'results' -> 9 -> 'error' ->> 'message',
  'prompt_tokens must be a whole number from 0 to 1000000000000', 'a fractional token count is rejected');
select is((:'first'::jsonb -> 'results' -> 0) - 'usage_id' - 'created_at',
  '{"index": 0, "status": "recorded", "model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 50,
    "total_tokens": 150, "cost": 0.00009, "balance": 850, "exhausted": false, "replayed": false, "reservation": null}'::jsonb,
  'a recorded event answers what record_token_usage answers, plus index and status');
select is((:'first'::jsonb -> 'results' -> 2 ->> 'balance')::bigint, 650::bigint,
  'events are applied in order: the second recorded event sees the first one''s debit');
select is(:'first'::jsonb -> 'results' -> 6 -> 'usage_id', :'first'::jsonb -> 'results' -> 0 -> 'usage_id',
  'a key repeated inside the batch replays the first event');

select tests.clear_authentication();
select results_eq(
  format($$select idempotency_key, total_tokens, project_id, session_id from platform.token_usage
            where user_id = %L order by id$$, :'alice'),
  $$values ('b-1'::text, 150::bigint, null::uuid, null::uuid),
           ('b-3', 200, '10000000-0000-4000-8000-00000000a001', '20000000-0000-4000-8000-00000000a001')$$,
  'only the accepted events are in the ledger');
select results_eq(
  format($$select used, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (350::bigint, 650::bigint)$$,
  'the balance is debited by the accepted events only, each once');

-- ---------------------------------------------------------------------------
-- Retrying the whole batch.
select tests.authenticate_as(:'alice');
select platform.record_token_usage_batch(:'batch') as retry \gset
select is(:'retry'::jsonb - 'results', '{"recorded": 0, "replayed": 3, "rejected": 10}'::jsonb,
  'a retried batch replays what was recorded and rejects the same events again');
select is((:'retry'::jsonb -> 'results' -> 0) - 'status' - 'replayed',
  (:'first'::jsonb -> 'results' -> 0) - 'status' - 'replayed',
  'a replayed event answers exactly its first answer');
select is((:'retry'::jsonb -> 'results' -> 2) - 'status' - 'replayed',
  (:'first'::jsonb -> 'results' -> 2) - 'status' - 'replayed',
  'every replayed event answers its own first answer');
select tests.clear_authentication();
select results_eq(
  format($$select count(*), sum(total_tokens)::bigint from platform.token_usage where user_id = %L$$, :'alice'),
  $$values (2::bigint, 350::bigint)$$, 'a retried batch writes no new ledger rows');
select is((select used from platform.token_balances where user_id = :'alice'), 350::bigint,
  'a retried batch is counted once');

-- A single-event retry of a batch event replays it too: one key space.
select tests.authenticate_as(:'alice');
select is(platform.record_token_usage('gpt-4o-mini', 100, 50, 'b-1', p_metadata => '{"n": 1}') - 'replayed',
  (:'first'::jsonb -> 'results' -> 0) - 'index' - 'status' - 'replayed',
  'record_token_usage with a batch event''s key replays the batch''s answer');

-- Usage past the balance is recorded inside a batch too.
select is(
  platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 700, "completion_tokens": 0, "idempotency_key": "b-over"}]')::jsonb
    -> 'results' -> 0 -> 'exhausted',
  'true'::jsonb, 'an event that exhausts the balance is recorded and says so');

-- A batch event settles its reservation.
select tests.clear_authentication();
select tests.grant_tokens(:'alice', 100);
select tests.authenticate_as(:'alice');
select platform.reserve_tokens(10, 60) ->> 'reservation_id' as hold \gset
select is(
  platform.record_token_usage_batch(jsonb_build_array(jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 5,
    'completion_tokens', 0, 'idempotency_key', 'b-hold', 'reservation_id', :'hold')))::jsonb -> 'results' -> 0 -> 'reservation',
  jsonb_build_object('id', :'hold', 'outcome', 'settled'),
  'a batch event settles the reservation it names');
select tests.clear_authentication();
select results_eq(
  format($$select used, reserved from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (1055::bigint, 0::bigint)$$, 'the settled hold is released and the event debited');

-- ---------------------------------------------------------------------------
-- Malformed batches.
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_token_usage_batch('{"model": "gpt-4o-mini"}')$$,
  'PT422', 'p_events must be a non-empty JSON array', 'a batch that is not an array is refused');
select is(tests.refusal_code($$select platform.record_token_usage_batch('[]')$$),
  'invalid_batch', 'an empty batch carries the code invalid_batch');
select throws_ok($$select platform.record_token_usage_batch(null)$$,
  'PT422', 'p_events must be a non-empty JSON array', 'a missing batch is refused');
select throws_ok(
  format($$select platform.record_token_usage_batch(%L)$$,
    (select jsonb_agg(jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 1, 'completion_tokens', 0,
                                         'idempotency_key', 'big-' || i))
       from generate_series(1, 1001) i)),
  'PT413', 'a batch carries at most 1000 events', 'a batch of 1001 events is refused with 413');
select is(tests.refusal_code(
  format($$select platform.record_token_usage_batch(%L)$$,
    (select jsonb_agg(jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 1, 'completion_tokens', 0,
                                         'idempotency_key', 'big-' || i))
       from generate_series(1, 1001) i))),
  'batch_too_large', 'an oversized batch carries the code batch_too_large');
select tests.clear_authentication();
select is((select count(*) from platform.token_usage where idempotency_key like 'big-%'), 0::bigint,
  'an oversized batch records nothing');
select tests.authenticate_as(:'bob');
select is(
  platform.record_token_usage_batch(
    (select jsonb_agg(jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 1, 'completion_tokens', 0,
                                         'idempotency_key', 'max-' || i))
       from generate_series(1, 1000) i))::jsonb - 'results',
  '{"recorded": 1000, "replayed": 0, "rejected": 0}'::jsonb,
  'a batch of exactly 1000 events is accepted');

-- ---------------------------------------------------------------------------
-- Who may call.
select tests.authenticate_as_anon();
select throws_ok($$select platform.record_token_usage_batch('[]')$$,
  '42501', 'permission denied for function record_token_usage_batch', 'anon may not call it');
select tests.authenticate_as(:'vera');
select throws_ok(
  $$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "v"}]')$$,
  'PT403', 'viewers cannot spend tokens', 'a viewer may not record a batch');
select tests.authenticate_as(:'bob');
select throws_ok(
  format($$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "x"}]', %L)$$, :'alice'),
  'PT403', 'you may act only for yourself', 'a signed-in user may not record a batch for another user');
select throws_ok(
  $$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "x"}]',
      p_api_key_id => '30000000-0000-4000-8000-00000000b001')$$,
  'PT403', 'only the service role names an API key', 'a signed-in user may not name an API key');
select tests.authenticate_as_service_role();
select throws_ok(
  $$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "x"}]')$$,
  'PT422', 'p_user_id is required when acting as the service role', 'the service role must name the user');
select throws_ok(
  format($$select platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "x"}]',
      %L, '30000000-0000-4000-8000-00000000b001')$$, :'alice'),
  'PT422', 'no such API key for this user', 'the service role naming another user''s key is refused');
select is(
  platform.record_token_usage_batch('[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "svc-1"}]',
    :'alice', '30000000-0000-4000-8000-00000000a001')::jsonb - 'results',
  '{"recorded": 1, "replayed": 0, "rejected": 0}'::jsonb,
  'the service role records a batch for the named user');
select tests.clear_authentication();
select is((select api_key_id from platform.token_usage where idempotency_key = 'svc-1'),
  '30000000-0000-4000-8000-00000000a001'::uuid, 'the batch''s events name the API key');

select * from finish();
rollback;
