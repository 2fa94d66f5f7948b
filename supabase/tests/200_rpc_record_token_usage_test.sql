-- platform.record_token_usage: records one usage event in the append-only
-- ledger and debits the balance, idempotently on (user, idempotency key).
-- Refusals follow the convention of 20261201000800_rpc_helpers.sql: SQLSTATE
-- PTxyz (PostgREST answers HTTP xyz), a safe message, the stable code as HINT.
-- Settling a reservation while recording is in 201_rpc_record_token_usage_settlement_test.sql.
begin;
select plan(63);

-- Fixtures, as the superuser.
select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 10000);
select tests.grant_tokens(:'bob', 10000);
select tests.grant_tokens(:'vera', 10000);

insert into platform.projects (id, owner_id, name) values
  ('10000000-0000-4000-8000-00000000a001', :'alice', 'alice project'),
  ('10000000-0000-4000-8000-00000000a002', :'alice', 'alice other project'),
  ('10000000-0000-4000-8000-00000000b001', :'bob', 'bob project');
insert into platform.sessions (id, project_id, user_id) values
  ('20000000-0000-4000-8000-00000000a001', '10000000-0000-4000-8000-00000000a001', :'alice'),
  ('20000000-0000-4000-8000-00000000b001', '10000000-0000-4000-8000-00000000b001', :'bob');
insert into platform.api_keys (id, user_id, name, prefix, secret_hash) values
  ('30000000-0000-4000-8000-00000000a001', :'alice', 'alice key', 'cds_alice0010000000000000000',
   encode(extensions.digest('alice secret', 'sha256'), 'hex')),
  ('30000000-0000-4000-8000-00000000b001', :'bob', 'bob key', 'cds_bob000010000000000000000',
   encode(extensions.digest('bob secret', 'sha256'), 'hex'));

-- ---------------------------------------------------------------------------
-- Happy path: a signed-in developer records for themselves.
select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 1000, 500, 'evt-1', p_metadata => '{"route": "chat"}') as first
\gset

select ok((:'first'::jsonb ->> 'usage_id') is not null and (:'first'::jsonb ->> 'created_at') is not null,
  'recording answers the new usage_id and its created_at');
select is(:'first'::jsonb - 'usage_id' - 'created_at',
  '{"model": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
    "cost": 0.0009, "balance": 8500, "exhausted": false, "replayed": false, "reservation": null}'::jsonb,
  'recording answers model, tokens, cost at the model''s price per 1k, the new balance, not exhausted, not replayed');

select tests.clear_authentication();
select is(
  (select jsonb_build_object('user_id', u.user_id, 'model', m.name, 'prompt', u.prompt_tokens,
     'completion', u.completion_tokens, 'total', u.total_tokens, 'cost', u.cost, 'key', u.idempotency_key,
     'balance_after', u.balance_after, 'metadata', u.metadata, 'api_key_id', u.api_key_id,
     'project_id', u.project_id, 'reservation_id', u.reservation_id)
     from platform.token_usage u join platform.models m on m.id = u.model_id
    where u.id = (:'first'::jsonb ->> 'usage_id')::bigint),
  jsonb_build_object('user_id', :'alice'::uuid, 'model', 'gpt-4o-mini', 'prompt', 1000, 'completion', 500,
    'total', 1500, 'cost', 0.0009, 'key', 'evt-1', 'balance_after', 8500, 'metadata', '{"route": "chat"}'::jsonb,
    'api_key_id', null, 'project_id', null, 'reservation_id', null),
  'the event is written to the ledger for the caller, with its tokens, cost, key, metadata and balance after');
select results_eq(
  format($$select granted, used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (10000::bigint, 1500::bigint, 0::bigint, 8500::bigint)$$,
  'the balance is debited by the total tokens');

-- ---------------------------------------------------------------------------
-- Idempotency.
select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 1000, 500, 'evt-1', p_metadata => '{"route": "chat"}') as retry
\gset
select is(:'retry'::jsonb - 'replayed', :'first'::jsonb - 'replayed',
  'a retry with the same key answers exactly the first answer (same usage_id, balance, created_at)');
select is(:'retry'::jsonb -> 'replayed', 'true'::jsonb, 'a retry says it was replayed');
select tests.clear_authentication();
select is((select count(*) from platform.token_usage where user_id = :'alice' and idempotency_key = 'evt-1'),
  1::bigint, 'a retry writes no second ledger row');
select is((select used from platform.token_balances where user_id = :'alice'), 1500::bigint,
  'a retry is counted once');

select tests.authenticate_as(:'alice');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1000, 501, 'evt-1', p_metadata => '{"route": "chat"}')$$,
  'PT409', 'this idempotency key was already used for a different event',
  'a key reused with different token counts is refused with 409');
select is(tests.refusal_code(
  $$select platform.record_token_usage('gpt-4o-mini', 1000, 501, 'evt-1', p_metadata => '{"route": "chat"}')$$),
  'idempotency_key_reused', 'a reused key carries the code idempotency_key_reused');
select throws_ok(
  $$select platform.record_token_usage('claude-3-5-haiku', 1000, 500, 'evt-1', p_metadata => '{"route": "chat"}')$$,
  'PT409', 'this idempotency key was already used for a different event',
  'a key reused for a different model is refused');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1000, 500, 'evt-1', p_metadata => '{"route": "other"}')$$,
  'PT409', 'this idempotency key was already used for a different event',
  'a key reused with different metadata is refused');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1000, 500, 'evt-1')$$,
  'PT409', 'this idempotency key was already used for a different event',
  'a key reused without the first call''s metadata is refused');

-- Idempotency keys belong to one user: Bob's "evt-1" is a new event.
select tests.authenticate_as(:'bob');
select is(platform.record_token_usage('gpt-4o-mini', 1000, 500, 'evt-1', p_metadata => '{"route": "chat"}') -> 'replayed',
  'false'::jsonb, 'another user''s event with the same key is recorded, not replayed');
select tests.clear_authentication();
select is((select used from platform.token_balances where user_id = :'alice'), 1500::bigint,
  'the reused-key refusals and another user''s event left the caller''s balance unchanged');

-- ---------------------------------------------------------------------------
-- Usage that already happened is recorded even when it exhausts the balance.
select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 9000, 0, 'evt-overdraw') as overdraw \gset
select is((:'overdraw'::jsonb ->> 'balance')::bigint, -500::bigint,
  'usage beyond the balance is recorded and takes the balance negative');
select is(:'overdraw'::jsonb -> 'exhausted', 'true'::jsonb, 'the answer says the balance is exhausted');
select tests.clear_authentication();
select results_eq(
  format($$select used, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (10500::bigint, -500::bigint)$$,
  'the balance row shows the overdraft');
select is((select balance_after from platform.token_usage where user_id = :'alice' and idempotency_key = 'evt-overdraw'),
  -500::bigint, 'the ledger row keeps the negative balance after it');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 0, 0, 'evt-zero')$$,
  'PT422', 'prompt_tokens + completion_tokens must be at least 1',
  'a zero-token event is refused: it would only add a row');

-- ---------------------------------------------------------------------------
-- Projects and sessions must be the caller's.
select is(
  platform.record_token_usage('gpt-4o-mini', 10, 10, 'evt-project', '10000000-0000-4000-8000-00000000a001',
    '20000000-0000-4000-8000-00000000a001') -> 'total_tokens',
  '20'::jsonb, 'usage in one''s own project and session is recorded');
select tests.clear_authentication();
select results_eq(
  $$select project_id, session_id from platform.token_usage where idempotency_key = 'evt-project'$$,
  $$values ('10000000-0000-4000-8000-00000000a001'::uuid, '20000000-0000-4000-8000-00000000a001'::uuid)$$,
  'the ledger row names the project and session');
select tests.authenticate_as(:'alice');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-bad-project', '10000000-0000-4000-8000-00000000b001')$$,
  'PT422', 'no such project for this user', 'usage against another user''s project is refused');
select is(tests.refusal_code(
  $$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-bad-project', '10000000-0000-4000-8000-00000000b001')$$),
  'unknown_project', 'an unknown project carries the code unknown_project');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-bad-project', '10000000-0000-4000-8000-0000000000ff')$$,
  'PT422', 'no such project for this user', 'usage against a project that does not exist is refused');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-bad-session', null, '20000000-0000-4000-8000-00000000b001')$$,
  'PT422', 'no such session for this user and project', 'usage in another user''s session is refused');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-bad-session', '10000000-0000-4000-8000-00000000a002',
      '20000000-0000-4000-8000-00000000a001')$$,
  'PT422', 'no such session for this user and project', 'a session outside the named project is refused');
select is(tests.refusal_code(
  $$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-bad-session', null, '20000000-0000-4000-8000-00000000b001')$$),
  'unknown_session', 'an unknown session carries the code unknown_session');

-- ---------------------------------------------------------------------------
-- Invalid input.
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', -1, 0, 'evt-neg')$$,
  'PT422', 'prompt_tokens must be a whole number from 0 to 1000000000000', 'negative prompt tokens are refused');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', -1, 0, 'evt-neg')$$),
  'invalid_token_count', 'a bad token count carries the code invalid_token_count');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 0, 1000000000001, 'evt-huge')$$,
  'PT422', 'completion_tokens must be a whole number from 0 to 1000000000000', 'more than 10^12 completion tokens are refused');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', null, 0, 'evt-null')$$,
  'PT422', 'prompt_tokens must be a whole number', 'missing prompt tokens are refused');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, null)$$,
  'PT422', 'an idempotency key of 1 to 255 characters is required', 'a missing idempotency key is refused');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, null)$$),
  'invalid_idempotency_key', 'a bad idempotency key carries the code invalid_idempotency_key');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, '')$$,
  'PT422', 'an idempotency key of 1 to 255 characters is required', 'an empty idempotency key is refused');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, %L)$$, repeat('k', 256)),
  'PT422', 'an idempotency key of 1 to 255 characters is required', 'a 256-character idempotency key is refused');
select lives_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, %L)$$, repeat('k', 255)),
  'a 255-character idempotency key is accepted');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-meta', p_metadata => '[1, 2]')$$,
  'PT422', 'metadata must be a JSON object of at most 8192 bytes as JSON text', 'metadata that is not an object is refused');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-meta', p_metadata => '[1, 2]')$$),
  'invalid_metadata', 'bad metadata carries the code invalid_metadata');
select throws_ok(
  format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-meta', p_metadata => %L)$$,
    jsonb_build_object('blob', repeat('x', 9000))),
  'PT422', 'metadata must be a JSON object of at most 8192 bytes as JSON text', 'metadata over 8 KiB is refused');
select throws_ok($$select platform.record_token_usage('no-such-model', 1, 1, 'evt-model')$$,
  'PT422', 'unknown model ''no-such-model''', 'an unknown model is refused');
select is(tests.refusal_code($$select platform.record_token_usage('no-such-model', 1, 1, 'evt-model')$$),
  'unknown_model', 'an unknown model carries the code unknown_model');
select tests.clear_authentication();
update platform.models set is_active = false where name = 'mistral-7b-instruct';
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_token_usage('mistral-7b-instruct', 1, 1, 'evt-inactive')$$,
  'PT422', 'unknown model ''mistral-7b-instruct''', 'an inactive model is refused like an unknown one');
select tests.clear_authentication();
select is((select count(*) from platform.token_usage where user_id = :'alice'
            and idempotency_key in ('evt-bad-project', 'evt-bad-session', 'evt-neg', 'evt-huge', 'evt-null',
                                    'evt-meta', 'evt-model', 'evt-inactive')),
  0::bigint, 'refused events leave no ledger rows');

-- ---------------------------------------------------------------------------
-- Who may call.
select tests.authenticate_as_anon();
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-anon')$$,
  '42501', 'permission denied for function record_token_usage', 'anon may not call it');

select tests.authenticate_as(:'vera');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-viewer')$$,
  'PT403', 'viewers cannot spend tokens', 'a viewer may not record usage');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-viewer')$$),
  'forbidden', 'a viewer''s refusal carries the code forbidden');

select tests.authenticate_as(:'bob');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x', p_user_id => %L)$$, :'alice'),
  'PT403', 'you may act only for yourself', 'a signed-in user may not record for another user');
select tests.authenticate_as(:'adam');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x', p_user_id => %L)$$, :'alice'),
  'PT403', 'you may act only for yourself', 'an admin may not record usage for another user either');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x',
                     p_api_key_id => '30000000-0000-4000-8000-00000000a001')$$,
  'PT403', 'only the service role names an API key', 'a signed-in user may not name an API key');
select tests.authenticate_as('40000000-0000-4000-8000-0000000000ee');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x')$$,
  'PT404', 'the user is not registered on the platform', 'a signed-in user not on the platform is refused');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x')$$),
  'unknown_user', 'an unregistered user carries the code unknown_user');
select tests.clear_authentication();
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x')$$,
  'PT401', 'sign in to call this function', 'a call without claims (no JWT) is refused as unauthenticated');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-x')$$),
  'not_authenticated', 'an unauthenticated call carries the code not_authenticated');

-- The service role (the edge, for a verified API key) names the user.
select tests.authenticate_as_service_role();
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-svc')$$,
  'PT422', 'p_user_id is required when acting as the service role', 'the service role must name the user');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-svc')$$),
  'user_id_required', 'a missing user carries the code user_id_required');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-svc',
                     p_user_id => '40000000-0000-4000-8000-0000000000ee')$$,
  'PT404', 'the user is not registered on the platform', 'the service role naming an unknown user is refused');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-svc', p_user_id => %L)$$, :'vera'),
  'PT403', 'viewers cannot spend tokens', 'the service role may not spend a viewer''s tokens');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-svc', p_user_id => %L,
                            p_api_key_id => '30000000-0000-4000-8000-00000000b001')$$, :'alice'),
  'PT422', 'no such API key for this user', 'the service role naming another user''s API key is refused');
select is(tests.refusal_code(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'evt-svc', p_user_id => %L,
                            p_api_key_id => '30000000-0000-4000-8000-00000000b001')$$, :'alice')),
  'unknown_api_key', 'a foreign API key carries the code unknown_api_key');
select is(
  platform.record_token_usage('claude-3-5-haiku', 1000, 500, 'evt-svc', p_user_id => :'alice',
    p_api_key_id => '30000000-0000-4000-8000-00000000a001') - 'usage_id' - 'created_at',
  '{"model": "claude-3-5-haiku", "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
    "cost": 0.006, "balance": -2022, "exhausted": true, "replayed": false, "reservation": null}'::jsonb,
  'the service role records for the named user with their API key');
select tests.clear_authentication();
select results_eq(
  $$select user_id, api_key_id from platform.token_usage where idempotency_key = 'evt-svc'$$,
  format($$values (%L::uuid, '30000000-0000-4000-8000-00000000a001'::uuid)$$, :'alice'),
  'the ledger row names the user and the API key');

-- After everything: the balance still equals grants minus the ledger.
select results_eq(
  format($$select b.used, b.balance from platform.token_balances b where b.user_id = %L$$, :'alice'),
  format($$select sum(total_tokens)::bigint, 10000 - sum(total_tokens)::bigint from platform.token_usage where user_id = %L$$, :'alice'),
  'the caller''s used tokens equal the sum of their ledger rows');

select * from finish();
rollback;
