-- record_token_usage with p_reservation_id settles the hold taken by
-- reserve_tokens (authorize, then capture): the actual usage is debited, the
-- hold is released, and the answer says what happened to the reservation
-- (`settled`, `not_active`, `not_found`). The usage itself is always recorded.
begin;
select plan(29);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.grant_tokens(:'alice', 1000);
select tests.grant_tokens(:'bob', 1000);

select tests.authenticate_as(:'bob');
select platform.reserve_tokens(100) ->> 'reservation_id' as bob_hold \gset

select tests.authenticate_as(:'alice');
select platform.reserve_tokens(300) ->> 'reservation_id' as hold \gset

-- ---------------------------------------------------------------------------
-- Settling an active hold.
select platform.record_token_usage('gpt-4o-mini', 100, 50, 'evt-settle', p_reservation_id => :'hold') as settled \gset
select is(:'settled'::jsonb -> 'reservation', jsonb_build_object('id', :'hold', 'outcome', 'settled'),
  'recording against an active hold answers outcome settled');
select is((:'settled'::jsonb ->> 'balance')::bigint, 850::bigint,
  'the actual usage (150), not the hold (300), is debited');
select tests.clear_authentication();
select results_eq(
  format($$select used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (150::bigint, 0::bigint, 850::bigint)$$,
  'the hold is released and the actual usage debited');
select results_eq(
  format($$select status, usage_id, closed_at is not null from platform.token_reservations where id = %L$$, :'hold'),
  format($$values ('settled'::text, %s::bigint, true)$$, :'settled'::jsonb ->> 'usage_id'),
  'the reservation is closed as settled and points to its usage row');
select results_eq(
  $$select reservation_id, reservation_outcome from platform.token_usage where idempotency_key = 'evt-settle'$$,
  format($$values (%L::uuid, 'settled'::text)$$, :'hold'),
  'the ledger row keeps the reservation and its outcome');

-- A retry replays the first answer, outcome included.
select tests.authenticate_as(:'alice');
select is(platform.record_token_usage('gpt-4o-mini', 100, 50, 'evt-settle', p_reservation_id => :'hold') - 'replayed',
  :'settled'::jsonb - 'replayed', 'a retry of a settling call answers the first answer, outcome settled');
select throws_ok(
  format($$select platform.record_token_usage('gpt-4o-mini', 100, 50, 'evt-settle', p_reservation_id => %L)$$, :'bob_hold'),
  'PT409', 'this idempotency key was already used for a different event',
  'a key reused with another reservation is refused');
select throws_ok(
  $$select platform.record_token_usage('gpt-4o-mini', 100, 50, 'evt-settle')$$,
  'PT409', 'this idempotency key was already used for a different event',
  'a key reused without the reservation is refused');

-- Settling the same hold again: a new event, recorded, outcome not_active.
select platform.record_token_usage('gpt-4o-mini', 10, 0, 'evt-settle-again', p_reservation_id => :'hold') as again \gset
select is(:'again'::jsonb -> 'reservation', jsonb_build_object('id', :'hold', 'outcome', 'not_active'),
  'settling a hold twice answers outcome not_active');
select is((:'again'::jsonb ->> 'balance')::bigint, 840::bigint, 'the second event is still recorded and debited');
select tests.clear_authentication();
select results_eq(
  format($$select status, usage_id from platform.token_reservations where id = %L$$, :'hold'),
  format($$values ('settled'::text, %s::bigint)$$, :'settled'::jsonb ->> 'usage_id'),
  'the settled hold keeps pointing to the first usage');
select is((select reserved from platform.token_balances where user_id = :'alice'), 0::bigint,
  'settling twice releases nothing twice');

-- ---------------------------------------------------------------------------
-- A released hold.
select tests.authenticate_as(:'alice');
select platform.reserve_tokens(200) ->> 'reservation_id' as released_hold \gset
select platform.release_token_reservation(:'released_hold') \g /dev/null
select is(platform.record_token_usage('gpt-4o-mini', 20, 0, 'evt-released', p_reservation_id => :'released_hold') -> 'reservation',
  jsonb_build_object('id', :'released_hold', 'outcome', 'not_active'),
  'recording against a released hold answers outcome not_active');
select tests.clear_authentication();
select results_eq(
  format($$select used, reserved from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (180::bigint, 0::bigint)$$,
  'usage against a released hold is debited and releases nothing more');
select is((select status from platform.token_reservations where id = :'released_hold'), 'released',
  'the released hold stays released');

-- ---------------------------------------------------------------------------
-- A hold the sweep expired.
select tests.authenticate_as(:'alice');
select platform.reserve_tokens(200) ->> 'reservation_id' as swept_hold \gset
select tests.clear_authentication();
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes'
 where id = :'swept_hold';
select tests.authenticate_as_service_role();
select platform.release_expired_reservations() \g /dev/null
select tests.authenticate_as(:'alice');
select is(platform.record_token_usage('gpt-4o-mini', 30, 0, 'evt-swept', p_reservation_id => :'swept_hold') -> 'reservation',
  jsonb_build_object('id', :'swept_hold', 'outcome', 'not_active'),
  'recording against an expired hold answers outcome not_active');
select tests.clear_authentication();
select results_eq(
  format($$select used, reserved from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (210::bigint, 0::bigint)$$,
  'usage against an expired hold is debited and releases nothing more');

-- A hold past its expiry that the sweep has not reached yet is expired too:
-- reserve_tokens already treats it so, and the outcome must not depend on
-- whether the sweep ran first.
select tests.authenticate_as(:'alice');
select platform.reserve_tokens(200) ->> 'reservation_id' as lapsed_hold \gset
select tests.clear_authentication();
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes'
 where id = :'lapsed_hold';
select tests.authenticate_as(:'alice');
select is(platform.record_token_usage('gpt-4o-mini', 40, 0, 'evt-lapsed', p_reservation_id => :'lapsed_hold') -> 'reservation',
  jsonb_build_object('id', :'lapsed_hold', 'outcome', 'not_active'),
  'recording against a hold past its expiry (not yet swept) answers outcome not_active');
select tests.clear_authentication();
select results_eq(
  format($$select status, usage_id from platform.token_reservations where id = %L$$, :'lapsed_hold'),
  $$values ('expired'::text, null::bigint)$$,
  'the lapsed hold is closed as expired, not settled');
select results_eq(
  format($$select used, reserved from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (250::bigint, 0::bigint)$$,
  'the lapsed hold returns to the balance and the usage is debited');

-- ---------------------------------------------------------------------------
-- Unknown holds, and other users' holds.
select tests.authenticate_as(:'alice');
select is(platform.record_token_usage('gpt-4o-mini', 50, 0, 'evt-unknown',
    p_reservation_id => '50000000-0000-4000-8000-0000000000ff') -> 'reservation',
  '{"id": "50000000-0000-4000-8000-0000000000ff", "outcome": "not_found"}'::jsonb,
  'recording against an unknown hold answers outcome not_found');
select is(platform.record_token_usage('gpt-4o-mini', 60, 0, 'evt-foreign', p_reservation_id => :'bob_hold') -> 'reservation',
  jsonb_build_object('id', :'bob_hold', 'outcome', 'not_found'),
  'another user''s hold is not found for the caller');
select tests.clear_authentication();
select results_eq(
  format($$select used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (360::bigint, 0::bigint, 640::bigint)$$,
  'usage against unknown holds is still recorded and debited');
select is((select status from platform.token_reservations where id = :'bob_hold'), 'active',
  'another user''s hold is left active');
select results_eq(
  format($$select used, reserved from platform.token_balances where user_id = %L$$, :'bob'),
  $$values (0::bigint, 100::bigint)$$,
  'another user''s balance is untouched');

-- ---------------------------------------------------------------------------
-- Settling through the service role (the edge, for an API key's owner), with
-- usage larger than the hold.
select tests.authenticate_as_service_role();
select platform.reserve_tokens(100, p_user_id => :'bob') ->> 'reservation_id' as bob_hold2 \gset
select is(platform.record_token_usage('gpt-4o-mini', 150, 100, 'evt-bob', p_reservation_id => :'bob_hold2',
    p_user_id => :'bob') -> 'reservation',
  jsonb_build_object('id', :'bob_hold2', 'outcome', 'settled'),
  'the service role settles a hold for the user it names');
select tests.clear_authentication();
select results_eq(
  format($$select used, reserved, balance from platform.token_balances where user_id = %L$$, :'bob'),
  $$values (250::bigint, 100::bigint, 750::bigint)$$,
  'usage above the hold debits the actual 250 and releases only that hold (the other stays reserved)');

-- The invariant after all of it.
select results_eq(
  $$select b.user_id, b.reserved from platform.token_balances b
     where b.user_id in (select user_id from platform.token_reservations) order by 1$$,
  $$select r.user_id, coalesce(sum(r.tokens) filter (where r.status = 'active'), 0)::bigint
      from platform.token_reservations r group by 1 order by 1$$,
  'reserved equals the sum of active holds, for every user');
select results_eq(
  $$select b.user_id, b.used from platform.token_balances b
     where b.user_id in (select user_id from platform.token_usage) order by 1$$,
  $$select u.user_id, sum(u.total_tokens)::bigint from platform.token_usage u group by 1 order by 1$$,
  'used equals the sum of the ledger, for every user');

select * from finish();
rollback;
