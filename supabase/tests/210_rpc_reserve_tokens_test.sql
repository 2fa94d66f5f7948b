-- platform.reserve_tokens: holds tokens before an LLM call. A hold succeeds
-- only while balance minus active holds covers it; holds past their expiry
-- return to the balance at once.
begin;
select plan(41);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('carol@example.test') as carol \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 1000);
select tests.grant_tokens(:'bob', 10000);
select tests.grant_tokens(:'carol', 100);
select tests.grant_tokens(:'vera', 1000);
insert into platform.api_keys (id, user_id, name, prefix, secret_hash) values
  ('30000000-0000-4000-8000-00000000b001', :'bob', 'bob key', 'cds_bob000010000000000000000',
   encode(extensions.digest('bob secret', 'sha256'), 'hex')),
  ('30000000-0000-4000-8000-00000000a001', :'alice', 'alice key', 'cds_alice0010000000000000000',
   encode(extensions.digest('alice secret', 'sha256'), 'hex'));

-- ---------------------------------------------------------------------------
-- Happy path.
select tests.authenticate_as(:'alice');
select platform.reserve_tokens(300, 60) as r1 \gset
select ok((:'r1'::jsonb ->> 'reservation_id') is not null, 'a hold answers its reservation_id');
select is(:'r1'::jsonb - 'reservation_id' - 'expires_at', '{"tokens": 300, "available": 700}'::jsonb,
  'a hold answers the tokens held and what is still available');
select is((:'r1'::jsonb ->> 'expires_at')::timestamptz, now() + interval '60 seconds',
  'a hold expires after its TTL');
select tests.clear_authentication();
select results_eq(
  format($$select user_id, tokens, status, expires_at, closed_at, usage_id, api_key_id
             from platform.token_reservations where id = %L$$, :'r1'::jsonb ->> 'reservation_id'),
  format($$values (%L::uuid, 300::bigint, 'active'::text, now() + interval '60 seconds', null::timestamptz,
                   null::bigint, null::uuid)$$, :'alice'),
  'the hold is stored as an active reservation of the caller');
select results_eq(
  format($$select granted, used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (1000::bigint, 0::bigint, 300::bigint, 1000::bigint)$$,
  'a hold is counted as reserved and spends nothing');

select tests.authenticate_as(:'alice');
select platform.reserve_tokens(100) as r2 \gset
select is((:'r2'::jsonb ->> 'expires_at')::timestamptz, now() + interval '300 seconds',
  'the default TTL is 300 seconds');
select is(platform.reserve_tokens(600) -> 'available', '0'::jsonb,
  'a hold may take exactly the rest of the balance');
select throws_ok($$select platform.reserve_tokens(1)$$,
  'PT402', '1 tokens requested, 0 available', 'a hold beyond the available balance is refused with 402');
select is(tests.refusal_code($$select platform.reserve_tokens(1)$$),
  'insufficient_balance', 'the refusal carries the code insufficient_balance');
select tests.clear_authentication();
select results_eq(
  format($$select count(*), sum(tokens)::bigint from platform.token_reservations where user_id = %L and status = 'active'$$, :'alice'),
  $$values (3::bigint, 1000::bigint)$$, 'a refused hold writes nothing');
select is((select reserved from platform.token_balances where user_id = :'alice'), 1000::bigint,
  'holds together never exceed the balance');

-- ---------------------------------------------------------------------------
-- Holds past their expiry go back to the balance at the next reservation.
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '1 second'
 where id = (:'r1'::jsonb ->> 'reservation_id')::uuid;
select tests.authenticate_as(:'alice');
select is(platform.reserve_tokens(300) -> 'available', '0'::jsonb,
  'a lapsed hold''s tokens are available again without waiting for the sweep');
select tests.clear_authentication();
select results_eq(
  format($$select status, closed_at is not null from platform.token_reservations where id = %L$$,
    :'r1'::jsonb ->> 'reservation_id'),
  $$values ('expired'::text, true)$$, 'the lapsed hold is closed as expired');
select is((select reserved from platform.token_balances where user_id = :'alice'),
  (select sum(tokens)::bigint from platform.token_reservations where user_id = :'alice' and status = 'active'),
  'reserved still equals the sum of active holds');
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '1 second'
 where id = (:'r2'::jsonb ->> 'reservation_id')::uuid;
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.reserve_tokens(150)$$,
  'PT402', '150 tokens requested, 100 available', 'what is available counts lapsed holds as free');
select tests.clear_authentication();
select is((select status from platform.token_reservations where id = (:'r2'::jsonb ->> 'reservation_id')::uuid),
  'active', 'a refused hold changes nothing, not even the lapsed hold it looked at');
select is((select reserved from platform.token_balances where user_id = :'alice'), 1000::bigint,
  'a refused hold leaves reserved as it was');

-- A balance already negative (usage recorded past it) offers nothing.
select tests.authenticate_as(:'carol');
select platform.record_token_usage('gpt-4o-mini', 150, 0, 'overdraw') \g /dev/null
select throws_ok($$select platform.reserve_tokens(1)$$,
  'PT402', '1 tokens requested, 0 available', 'a negative balance offers no tokens (and says 0, not a negative number)');

-- ---------------------------------------------------------------------------
-- Invalid input.
select tests.authenticate_as(:'bob');
select throws_ok($$select platform.reserve_tokens(0)$$,
  'PT422', 'tokens must be a whole number from 1 to 1000000000000', 'a hold of zero tokens is refused');
select is(tests.refusal_code($$select platform.reserve_tokens(0)$$),
  'invalid_token_count', 'a bad token count carries the code invalid_token_count');
select throws_ok($$select platform.reserve_tokens(-5)$$,
  'PT422', 'tokens must be a whole number from 1 to 1000000000000', 'a negative hold is refused');
select throws_ok($$select platform.reserve_tokens(null)$$,
  'PT422', 'tokens must be a whole number from 1 to 1000000000000', 'a hold without a token count is refused');
select throws_ok($$select platform.reserve_tokens(1000000000001)$$,
  'PT422', 'tokens must be a whole number from 1 to 1000000000000', 'a hold over 10^12 tokens is refused');
select throws_ok($$select platform.reserve_tokens(1, 9)$$,
  'PT422', 'ttl_seconds must be from 10 to 3600', 'a TTL under 10 seconds is refused');
select is(tests.refusal_code($$select platform.reserve_tokens(1, 9)$$),
  'invalid_ttl', 'a bad TTL carries the code invalid_ttl');
select throws_ok($$select platform.reserve_tokens(1, 3601)$$,
  'PT422', 'ttl_seconds must be from 10 to 3600', 'a TTL over an hour is refused');
select throws_ok($$select platform.reserve_tokens(1, null)$$,
  'PT422', 'ttl_seconds must be from 10 to 3600', 'a null TTL is refused');
select lives_ok($$select platform.reserve_tokens(1, 10)$$, 'a TTL of 10 seconds is accepted');
select lives_ok($$select platform.reserve_tokens(1, 3600)$$, 'a TTL of 3600 seconds is accepted');

-- ---------------------------------------------------------------------------
-- Who may call.
select tests.authenticate_as_anon();
select throws_ok($$select platform.reserve_tokens(1)$$,
  '42501', 'permission denied for function reserve_tokens', 'anon may not reserve');
select tests.authenticate_as(:'vera');
select throws_ok($$select platform.reserve_tokens(1)$$,
  'PT403', 'viewers cannot spend tokens', 'a viewer may not reserve');
select is(tests.refusal_code($$select platform.reserve_tokens(1)$$), 'forbidden',
  'a viewer''s refusal carries the code forbidden');
select tests.authenticate_as(:'alice');
select throws_ok(format($$select platform.reserve_tokens(1, 60, %L)$$, :'bob'),
  'PT403', 'you may act only for yourself', 'a signed-in user may not reserve another user''s tokens');
select throws_ok($$select platform.reserve_tokens(1, 60, null, '30000000-0000-4000-8000-00000000a001')$$,
  'PT403', 'only the service role names an API key', 'a signed-in user may not name an API key');
select tests.authenticate_as(:'adam');
select throws_ok(format($$select platform.reserve_tokens(1, 60, %L)$$, :'bob'),
  'PT403', 'you may act only for yourself', 'an admin may not reserve another user''s tokens');
select tests.authenticate_as('40000000-0000-4000-8000-0000000000ee');
select throws_ok($$select platform.reserve_tokens(1)$$,
  'PT404', 'the user is not registered on the platform', 'a signed-in user not on the platform is refused');
select tests.authenticate_as_service_role();
select throws_ok($$select platform.reserve_tokens(1)$$,
  'PT422', 'p_user_id is required when acting as the service role', 'the service role must name the user');
select throws_ok($$select platform.reserve_tokens(1, 60, '40000000-0000-4000-8000-0000000000ee')$$,
  'PT404', 'the user is not registered on the platform', 'the service role naming an unknown user is refused');
select throws_ok(format($$select platform.reserve_tokens(1, 60, %L, '30000000-0000-4000-8000-00000000a001')$$, :'bob'),
  'PT422', 'no such API key for this user', 'the service role naming another user''s key is refused');
select platform.reserve_tokens(500, 60, :'bob', '30000000-0000-4000-8000-00000000b001') as svc \gset
select is((:'svc'::jsonb ->> 'available')::bigint, 10000 - 2 - 500::bigint,
  'the service role reserves for the named user');
select tests.clear_authentication();
select is((select api_key_id from platform.token_reservations where id = (:'svc'::jsonb ->> 'reservation_id')::uuid),
  '30000000-0000-4000-8000-00000000b001'::uuid, 'the hold names the API key it was taken for');

select * from finish();
rollback;
