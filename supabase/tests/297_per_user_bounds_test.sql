-- No user can grow the database without bound: an event with zero tokens is
-- refused on every usage path; metadata is capped at
-- platform.max_metadata_bytes() wherever a user stores it (usage events,
-- sessions; projects carry only a bounded name and description); projects,
-- sessions and API keys (revoked ones included) have per-user caps, refused
-- with 409 and the cap in the message.
begin;
select plan(27);

select tests.create_user('b-alice@example.test') as alice \gset
select tests.create_user('b-bob@example.test') as bob \gset
select tests.grant_tokens(:'alice', 10000);

-- ---------------------------------------------------------------------------
-- Zero tokens.
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 0, 0, 'b-zero')$$,
  'PT422', 'prompt_tokens + completion_tokens must be at least 1', 'an event with zero tokens is refused');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 0, 0, 'b-zero')$$),
  'invalid_token_count', 'zero tokens carries the code invalid_token_count');
select lives_ok($$select platform.record_token_usage('gpt-4o-mini', 0, 1, 'b-one')$$,
  'one completion token alone is an event');
select is(platform.record_token_usage_batch(
    '[{"model": "gpt-4o-mini", "prompt_tokens": 0, "completion_tokens": 0, "idempotency_key": "b-zero-batch"}]')
    -> 'results' -> 0 -> 'error' ->> 'code',
  'invalid_token_count', 'a batch event with zero tokens is rejected');
select tests.authenticate_as_service_role();
select is(platform.record_queued_usage(jsonb_build_array(jsonb_build_object('user_id', :'alice',
    'event', '{"model": "gpt-4o-mini", "prompt_tokens": 0, "completion_tokens": 0, "idempotency_key": "b-zero-q"}'::jsonb)))
    -> 'rejections' -> 0 -> 'error' ->> 'code',
  'invalid_token_count', 'a queued event with zero tokens is rejected');
select tests.clear_authentication();
select is((select count(*) from platform.token_usage where user_id = :'alice' and total_tokens = 0), 0::bigint,
  'no zero-token row is recorded');
select is((select code from platform.usage_rejections where idempotency_key = 'b-zero-q'), 'invalid_token_count',
  'the queued zero-token event is kept as a rejection');

-- ---------------------------------------------------------------------------
-- Metadata.
select tests.authenticate_as(:'alice');
select lives_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'b-meta-max', p_metadata => %L)$$,
    jsonb_build_object('b', repeat('x', 8192 - 9))),
  'usage metadata of exactly 8192 bytes is accepted');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'b-meta-big', p_metadata => %L)$$,
    jsonb_build_object('b', repeat('x', 8192 - 8))),
  'PT422', 'metadata must be a JSON object of at most 8192 bytes as JSON text',
  'usage metadata of 8193 bytes is refused with the cap in the message');
insert into platform.projects (id, owner_id, name) values ('b0000000-0000-4000-8000-000000000001', :'alice', 'bounded');
select lives_ok(format($$insert into platform.sessions (project_id, user_id, metadata) values
    ('b0000000-0000-4000-8000-000000000001', %L, %L)$$, :'alice', jsonb_build_object('b', repeat('x', 8192 - 9))),
  'session metadata of exactly 8192 bytes is accepted');
select throws_ok(format($$insert into platform.sessions (project_id, user_id, metadata) values
    ('b0000000-0000-4000-8000-000000000001', %L, %L)$$, :'alice', jsonb_build_object('b', repeat('x', 8192 - 8))),
  'PT422', 'metadata must be at most 8192 bytes as JSON text', 'a new session with too much metadata is refused');
select is(tests.refusal_code(format($$insert into platform.sessions (project_id, user_id, metadata) values
    ('b0000000-0000-4000-8000-000000000001', %L, %L)$$, :'alice', jsonb_build_object('b', repeat('x', 9000)))),
  'invalid_metadata', 'too much session metadata carries the code invalid_metadata');
select throws_ok(format($$update platform.sessions set metadata = %L where user_id = %L$$,
    jsonb_build_object('b', repeat('x', 9000)), :'alice'),
  'PT422', 'metadata must be at most 8192 bytes as JSON text', 'growing a session''s metadata past the cap is refused');
select throws_ok(format($$insert into platform.projects (owner_id, name, description) values (%L, 'long', %L)$$,
    :'alice', repeat('d', 2001)),
  '23514', null, 'a project''s description is bounded too');

-- ---------------------------------------------------------------------------
-- Projects per user.
select tests.clear_authentication();
insert into platform.projects (owner_id, name)
select :'alice', 'bulk ' || i from generate_series(2, 100) i;
select tests.authenticate_as(:'alice');
select throws_ok(format($$insert into platform.projects (owner_id, name) values (%L, 'one too many')$$, :'alice'),
  'PT409', 'delete a project first: at most 100 projects per user', 'a 101st project is refused with 409');
select is(tests.refusal_code(format($$insert into platform.projects (owner_id, name) values (%L, 'one too many')$$, :'alice')),
  'too_many_projects', 'the refusal carries the code too_many_projects');
select tests.authenticate_as(:'bob');
select lives_ok(format($$insert into platform.projects (id, owner_id, name) values ('b0000000-0000-4000-8000-000000000002', %L, 'bob''s')$$, :'bob'),
  'the project cap is per user');

-- Sessions per user.
select tests.clear_authentication();
insert into platform.sessions (project_id, user_id)
select 'b0000000-0000-4000-8000-000000000001', :'alice' from generate_series(2, 10000);
select is((select count(*) from platform.sessions where user_id = :'alice'), 10000::bigint, 'alice has 10000 sessions');
select tests.authenticate_as(:'alice');
select throws_ok(format($$insert into platform.sessions (project_id, user_id) values ('b0000000-0000-4000-8000-000000000001', %L)$$, :'alice'),
  'PT409', 'delete a session first: at most 10000 sessions per user', 'a 10001st session is refused with 409');
select is(tests.refusal_code(format($$insert into platform.sessions (project_id, user_id) values ('b0000000-0000-4000-8000-000000000001', %L)$$, :'alice')),
  'too_many_sessions', 'the refusal carries the code too_many_sessions');
select tests.authenticate_as(:'bob');
select lives_ok(format($$insert into platform.sessions (project_id, user_id) values ('b0000000-0000-4000-8000-000000000002', %L)$$, :'bob'),
  'the session cap is per user');
select tests.clear_authentication();
select lives_ok(format($$delete from platform.sessions where id = (select id from platform.sessions where user_id = %L limit 1)$$, :'alice'),
  'deleting a session');
select tests.authenticate_as(:'alice');
select lives_ok(format($$insert into platform.sessions (project_id, user_id) values ('b0000000-0000-4000-8000-000000000001', %L)$$, :'alice'),
  'makes room for another');

-- ---------------------------------------------------------------------------
-- API keys per user, revoked ones included.
select tests.clear_authentication();
insert into platform.api_keys (user_id, name, prefix, secret_hash, revoked_at)
select :'alice', 'old ' || i, 'cds_bold' || lpad(i::text, 20, '0'),
       encode(extensions.digest('b old ' || i, 'sha256'), 'hex'), now()
  from generate_series(1, 99) i;
select tests.authenticate_as_service_role();
select lives_ok(format($$select platform.create_api_key('100th', 'cds_bnew00010000000000000000', %L, p_user_id => %L)$$, repeat('1', 64), :'alice'),
  'a 100th key is accepted while 99 are revoked');
select throws_ok(format($$select platform.create_api_key('101st', 'cds_bnew00020000000000000000', %L, p_user_id => %L)$$, repeat('2', 64), :'alice'),
  'PT409', 'at most 100 API keys per user, revoked ones included',
  'a 101st key is refused although only one is active');
select is(tests.refusal_code(format($$select platform.create_api_key('101st', 'cds_bnew00020000000000000000', %L, p_user_id => %L)$$, repeat('2', 64), :'alice')),
  'too_many_api_keys', 'the refusal carries the code too_many_api_keys');
select tests.clear_authentication();
select is((select count(*) from platform.api_keys where user_id = :'alice'), 100::bigint, 'alice keeps 100 keys');

select * from finish();
rollback;
