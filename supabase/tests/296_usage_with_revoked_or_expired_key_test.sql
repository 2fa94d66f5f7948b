-- Usage naming a revoked or expired API key: refused with the reason
-- (api_key_revoked / api_key_expired), never recorded, on every path: one
-- event, a batch, a hold, and queued events, which are kept in
-- usage_rejections with the reason (queued while the key was valid, the key
-- revoked or expired before the consumer ran).
begin;
select plan(16);

select tests.create_user('k-alice@example.test') as alice \gset
select tests.grant_tokens(:'alice', 10000);
insert into platform.api_keys (id, user_id, name, prefix, secret_hash, created_at, expires_at, revoked_at) values
  ('31000000-0000-4000-8000-000000000001', :'alice', 'valid', 'cds_kval00010000000000000000', repeat('1', 64), now(), null, null),
  ('31000000-0000-4000-8000-000000000002', :'alice', 'revoked', 'cds_krev00010000000000000000', repeat('2', 64), now(), null, now()),
  ('31000000-0000-4000-8000-000000000003', :'alice', 'expired', 'cds_kexp00010000000000000000', repeat('3', 64),
   now() - interval '2 hours', now() - interval '1 hour', null);

create function pg_temp.msg(p_user uuid, p_api_key text, p_key text) returns jsonb
language sql as $$
  select jsonb_build_object('user_id', p_user, 'api_key_id', p_api_key,
    'event', jsonb_build_object('idempotency_key', p_key, 'model', 'gpt-4o-mini',
                                'prompt_tokens', 10, 'completion_tokens', 5))
$$;

-- The helpers above are called under the API roles below; functions are not
-- executable by PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

select tests.authenticate_as_service_role();
-- One event.
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'k-1', p_user_id => %L,
                            p_api_key_id => '31000000-0000-4000-8000-000000000002')$$, :'alice'),
  'PT401', 'this API key has been revoked', 'one event naming a revoked key is refused');
select is(tests.refusal_code(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'k-1', p_user_id => %L,
                            p_api_key_id => '31000000-0000-4000-8000-000000000002')$$, :'alice')),
  'api_key_revoked', 'a revoked key carries the code api_key_revoked');
select throws_ok(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'k-1', p_user_id => %L,
                            p_api_key_id => '31000000-0000-4000-8000-000000000003')$$, :'alice'),
  'PT401', 'this API key has expired', 'one event naming an expired key is refused');
select is(tests.refusal_code(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'k-1', p_user_id => %L,
                            p_api_key_id => '31000000-0000-4000-8000-000000000003')$$, :'alice')),
  'api_key_expired', 'an expired key carries the code api_key_expired');
-- A batch.
select throws_ok(format($$select platform.record_token_usage_batch(
    '[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "k-2"}]',
    %L, '31000000-0000-4000-8000-000000000002')$$, :'alice'),
  'PT401', 'this API key has been revoked', 'a batch naming a revoked key is refused');
select throws_ok(format($$select platform.record_token_usage_batch(
    '[{"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "k-2"}]',
    %L, '31000000-0000-4000-8000-000000000003')$$, :'alice'),
  'PT401', 'this API key has expired', 'a batch naming an expired key is refused');
-- A hold.
select throws_ok(format($$select platform.reserve_tokens(10, 60, %L, '31000000-0000-4000-8000-000000000002')$$, :'alice'),
  'PT401', 'this API key has been revoked', 'a hold naming a revoked key is refused');
select throws_ok(format($$select platform.reserve_tokens(10, 60, %L, '31000000-0000-4000-8000-000000000003')$$, :'alice'),
  'PT401', 'this API key has expired', 'a hold naming an expired key is refused');
-- The valid key still works.
select is(platform.record_token_usage('gpt-4o-mini', 1, 1, 'k-ok', p_user_id => :'alice',
    p_api_key_id => '31000000-0000-4000-8000-000000000001') ->> 'total_tokens', '2',
  'a valid key records');

-- Queued events.
select platform.record_queued_usage(jsonb_build_array(
  pg_temp.msg(:'alice', '31000000-0000-4000-8000-000000000002', 'k-q-revoked'),
  pg_temp.msg(:'alice', '31000000-0000-4000-8000-000000000003', 'k-q-expired'),
  pg_temp.msg(:'alice', '31000000-0000-4000-8000-000000000001', 'k-q-ok')
)) as answer \gset
select is(:'answer'::jsonb - 'rejections' - 'lag_ms',
  '{"messages": 3, "recorded": 1, "replayed": 0, "rejected": 2}'::jsonb,
  'queued events naming a revoked or expired key are rejected, the valid key''s recorded');
select is((select jsonb_agg(r -> 'error' ->> 'code') from jsonb_array_elements(:'answer'::jsonb -> 'rejections') r),
  '["api_key_revoked", "api_key_expired"]'::jsonb, 'each rejection names its reason');
select is(platform.usage_event_status('k-q-revoked', :'alice') ->> 'status', 'rejected',
  'the status of a queued event with a revoked key reads rejected');
select tests.clear_authentication();

select results_eq(
  $$select idempotency_key, source, code, api_key_id from platform.usage_rejections
     where idempotency_key like 'k-q-%' order by idempotency_key$$,
  $$values ('k-q-expired'::text, 'queue'::text, 'api_key_expired'::text, '31000000-0000-4000-8000-000000000003'::uuid),
           ('k-q-revoked', 'queue', 'api_key_revoked', '31000000-0000-4000-8000-000000000002')$$,
  'the rejections are kept with their reason and key');
select results_eq(
  format($$select idempotency_key from platform.token_usage where user_id = %L order by 1$$, :'alice'),
  $$values ('k-ok'::text), ('k-q-ok')$$, 'nothing naming a revoked or expired key is recorded');
select is((select count(*) from platform.token_reservations where user_id = :'alice'), 0::bigint,
  'no hold was taken');
select results_eq(
  format($$select used, reserved from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (17::bigint, 0::bigint)$$, 'the balance is debited for the valid key''s events only');

select * from finish();
rollback;
