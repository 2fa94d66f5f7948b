-- platform.grant_user_tokens: an admin or the service role credits a user's
-- balance; every grant is a row of the append-only grants ledger. Idempotent
-- on (user, idempotency key) when a key is given.
begin;
select plan(42);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset

-- ---------------------------------------------------------------------------
-- An admin grants.
select tests.authenticate_as(:'adam');
select platform.grant_user_tokens(:'alice', 500, '  welcome bonus  ') as g1 \gset
select ok((:'g1'::jsonb ->> 'grant_id') is not null, 'a grant answers its grant_id');
select is(:'g1'::jsonb - 'grant_id',
  jsonb_build_object('user_id', :'alice', 'amount', 500, 'balance', 500, 'replayed', false),
  'a grant answers the user, the amount, the new balance, not replayed');
select tests.clear_authentication();
select results_eq(
  format($$select user_id, amount, reason, granted_by, granted_by_role, idempotency_key
             from platform.token_grants where id = %s$$, :'g1'::jsonb ->> 'grant_id'),
  format($$values (%L::uuid, 500::bigint, 'welcome bonus'::text, %L::uuid, 'admin'::text, null::text)$$, :'alice', :'adam'),
  'the grant is in the ledger with its trimmed reason and the admin who granted it');
select results_eq(
  format($$select granted, used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (500::bigint, 0::bigint, 0::bigint, 500::bigint)$$, 'the grant is credited to the balance');

-- The service role grants (e.g. a purchase webhook), with an idempotency key.
select tests.authenticate_as_service_role();
select platform.grant_user_tokens(:'alice', 1000, 'purchase', 'order-1') as g2 \gset
select is(:'g2'::jsonb - 'grant_id',
  jsonb_build_object('user_id', :'alice', 'amount', 1000, 'balance', 1500, 'replayed', false),
  'the service role grants');
select tests.clear_authentication();
select results_eq(
  format($$select granted_by, granted_by_role, idempotency_key from platform.token_grants where id = %s$$,
    :'g2'::jsonb ->> 'grant_id'),
  $$values (null::uuid, 'service_role'::text, 'order-1'::text)$$,
  'a service-role grant is recorded as such, with its key');

-- ---------------------------------------------------------------------------
-- Idempotency.
select tests.authenticate_as_service_role();
select platform.grant_user_tokens(:'alice', 1000, 'purchase', 'order-1') as g2_retry \gset
select is(:'g2_retry'::jsonb - 'replayed', :'g2'::jsonb - 'replayed',
  'a retried grant answers the first answer (same grant_id, amount and balance)');
select is(:'g2_retry'::jsonb -> 'replayed', 'true'::jsonb, 'a retried grant says it was replayed');
select throws_ok(
  format($$ select platform.grant_user_tokens(%L, 1000, 'purchase, described differently', 'order-1') $$, :'alice'),
  'PT409', 'this idempotency key was already used for a different grant',
  'a retry must ask for the same grant: another reason under the same key is refused');
select tests.clear_authentication();
select results_eq(
  format($$select count(*), sum(amount)::bigint from platform.token_grants where user_id = %L$$, :'alice'),
  $$values (2::bigint, 1500::bigint)$$, 'a retried grant writes no second ledger row');
select is((select granted from platform.token_balances where user_id = :'alice'), 1500::bigint,
  'a retried grant is credited once');

select tests.authenticate_as_service_role();
select throws_ok(format($$select platform.grant_user_tokens(%L, 999, 'purchase', 'order-1')$$, :'alice'),
  'PT409', 'this idempotency key was already used for a different grant',
  'a key reused for a different amount is refused with 409');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(%L, 999, 'purchase', 'order-1')$$, :'alice')),
  'idempotency_key_reused', 'a reused key carries the code idempotency_key_reused');
select is(platform.grant_user_tokens(:'bob', 1000, 'purchase', 'order-1') -> 'replayed', 'false'::jsonb,
  'idempotency keys are per user: another user''s grant with the same key is new');
select tests.clear_authentication();
select is((select granted from platform.token_balances where user_id = :'alice'), 1500::bigint,
  'the refused reuse credited nothing');

-- A grant restores a balance that usage took negative.
select tests.authenticate_as(:'bob');
select platform.record_token_usage('gpt-4o-mini', 1500, 0, 'overdraw') \g /dev/null
select tests.authenticate_as(:'adam');
select is(platform.grant_user_tokens(:'bob', 700, 'top-up') -> 'balance', '200'::jsonb,
  'a grant is added to a negative balance');

-- A platform user without a balance row yet gets one on the first grant.
select tests.clear_authentication();
insert into auth.users (id, aud, role, email) values
  ('40000000-0000-4000-8000-0000000000b0', 'authenticated', 'authenticated', 'nobalance@example.test');
insert into platform.users (id, username, email) values
  ('40000000-0000-4000-8000-0000000000b0', 'nobalance', 'nobalance@example.test');
select tests.authenticate_as_service_role();
select is(platform.grant_user_tokens('40000000-0000-4000-8000-0000000000b0', 10, 'first') -> 'balance', '10'::jsonb,
  'a user without a balance row is credited (the row is created)');

-- ---------------------------------------------------------------------------
-- Invalid input.
select throws_ok(format($$select platform.grant_user_tokens(%L, 0, 'r')$$, :'alice'),
  'PT422', 'amount must be a whole number from 1 to 1000000000000', 'a grant of zero is refused');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(%L, 0, 'r')$$, :'alice')),
  'invalid_amount', 'a bad amount carries the code invalid_amount');
select throws_ok(format($$select platform.grant_user_tokens(%L, -10, 'r')$$, :'alice'),
  'PT422', 'amount must be a whole number from 1 to 1000000000000', 'a negative grant is refused');
select throws_ok(format($$select platform.grant_user_tokens(%L, null, 'r')$$, :'alice'),
  'PT422', 'amount must be a whole number from 1 to 1000000000000', 'a grant without an amount is refused');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1000000000001, 'r')$$, :'alice'),
  'PT422', 'amount must be a whole number from 1 to 1000000000000', 'a grant over 10^12 is refused');
select lives_ok(format($$select platform.grant_user_tokens(%L, 1000000000000, 'r')$$, :'bob'),
  'a grant of exactly 10^12 is accepted');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, null)$$, :'alice'),
  'PT422', 'a reason of 1 to 500 characters is required', 'a grant without a reason is refused');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(%L, 1, null)$$, :'alice')),
  'invalid_reason', 'a bad reason carries the code invalid_reason');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, '   ')$$, :'alice'),
  'PT422', 'a reason of 1 to 500 characters is required', 'a blank reason is refused');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, %L)$$, :'alice', repeat('r', 501)),
  'PT422', 'a reason of 1 to 500 characters is required', 'a reason over 500 characters is refused');
select lives_ok(format($$select platform.grant_user_tokens(%L, 1, %L)$$, :'bob', repeat('r', 500)),
  'a reason of 500 characters is accepted');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r', '')$$, :'alice'),
  'PT422', 'the idempotency key must be 1 to 255 characters', 'an empty idempotency key is refused');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(%L, 1, 'r', '')$$, :'alice')),
  'invalid_idempotency_key', 'a bad key carries the code invalid_idempotency_key');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r', %L)$$, :'alice', repeat('k', 256)),
  'PT422', 'the idempotency key must be 1 to 255 characters', 'a 256-character idempotency key is refused');
select throws_ok($$select platform.grant_user_tokens('40000000-0000-4000-8000-0000000000ee', 1, 'r')$$,
  'PT404', 'the user is not registered on the platform', 'a grant to an unknown user is refused with 404');
select is(tests.refusal_code($$select platform.grant_user_tokens('40000000-0000-4000-8000-0000000000ee', 1, 'r')$$),
  'unknown_user', 'an unknown user carries the code unknown_user');
select tests.clear_authentication();
select is((select granted from platform.token_balances where user_id = :'alice'), 1500::bigint,
  'refused grants credit nothing');

-- ---------------------------------------------------------------------------
-- Only admins and the service role grant.
select tests.authenticate_as_anon();
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r')$$, :'alice'),
  '42501', 'permission denied for function grant_user_tokens', 'anon may not grant');
select tests.authenticate_as(:'alice');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r')$$, :'alice'),
  'PT403', 'only admins grant tokens', 'a developer may not grant tokens to themselves');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(%L, 1, 'r')$$, :'alice')),
  'forbidden', 'the refusal carries the code forbidden');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r')$$, :'bob'),
  'PT403', 'only admins grant tokens', 'a developer may not grant tokens to someone else');
select tests.authenticate_as(:'vera');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r')$$, :'vera'),
  'PT403', 'only admins grant tokens', 'a viewer may not grant tokens');
select tests.clear_authentication();
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r')$$, :'alice'),
  'PT403', 'only admins grant tokens', 'a caller without claims may not grant tokens');
select tests.authenticate_as(:'adam');
select throws_ok(format($$select platform.grant_user_tokens(%L, 0, 'r')$$, :'alice'),
  'PT422', 'amount must be a whole number from 1 to 1000000000000', 'an admin''s grant is validated too');
select tests.clear_authentication();
select is((select granted from platform.token_balances where user_id = :'alice'), 1500::bigint,
  'refused callers credited nothing');

select * from finish();
rollback;
