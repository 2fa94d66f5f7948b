-- platform.release_token_reservation: gives a hold back before it expires.
-- Releasing a hold that is no longer active answers its status and changes
-- nothing; a hold the caller does not own is unknown to them; a hold of the
-- same user taken by another caller (another API key, or a key when the user
-- releases with their token, or the reverse) is refused with 403.
begin;
select plan(34);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 1000);
select tests.grant_tokens(:'bob', 1000);
select tests.grant_tokens(:'vera', 1000);
insert into platform.api_keys (id, user_id, name, prefix, secret_hash) values
  ('a1000000-0000-4000-8000-000000000001', :'alice', 'server one', 'cds_rel000010000000000000000', repeat('1', 64)),
  ('a1000000-0000-4000-8000-000000000002', :'alice', 'server two', 'cds_rel000020000000000000000', repeat('2', 64));

select tests.authenticate_as(:'alice');
select platform.reserve_tokens(300) ->> 'reservation_id' as hold \gset
select platform.reserve_tokens(100) ->> 'reservation_id' as settled_hold \gset
select platform.reserve_tokens(50) ->> 'reservation_id' as swept_hold \gset
select platform.reserve_tokens(40) ->> 'reservation_id' as svc_hold \gset
select platform.record_token_usage('gpt-4o-mini', 80, 0, 'evt-1', p_reservation_id => :'settled_hold') \g /dev/null
select tests.authenticate_as(:'vera');
select platform.reserve_tokens(200) ->> 'reservation_id' as vera_hold \gset
select tests.clear_authentication();
-- Vera is demoted to viewer while her hold is open.
update platform.users set role = 'viewer' where id = :'vera';
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes'
 where id = :'swept_hold';
select tests.authenticate_as_service_role();
select platform.release_expired_reservations() \g /dev/null

-- ---------------------------------------------------------------------------
-- Releasing an active hold.
select tests.authenticate_as(:'alice');
select is(platform.release_token_reservation(:'hold'),
  jsonb_build_object('reservation_id', :'hold', 'status', 'released', 'released_tokens', 300),
  'releasing an active hold answers released and the tokens given back');
select tests.clear_authentication();
select results_eq(
  format($$select status, closed_at is not null, usage_id from platform.token_reservations where id = %L$$, :'hold'),
  $$values ('released'::text, true, null::bigint)$$, 'the hold is closed as released');
select results_eq(
  format($$select used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (80::bigint, 40::bigint, 920::bigint)$$,
  'the released tokens leave reserved and nothing is spent');

-- Releasing what is no longer active changes nothing.
select tests.authenticate_as(:'alice');
select is(platform.release_token_reservation(:'hold'),
  jsonb_build_object('reservation_id', :'hold', 'status', 'released', 'released_tokens', 0),
  'releasing twice answers released with nothing given back');
select is(platform.release_token_reservation(:'settled_hold'),
  jsonb_build_object('reservation_id', :'settled_hold', 'status', 'settled', 'released_tokens', 0),
  'releasing a settled hold answers settled with nothing given back');
select is(platform.release_token_reservation(:'swept_hold'),
  jsonb_build_object('reservation_id', :'swept_hold', 'status', 'expired', 'released_tokens', 0),
  'releasing an expired hold answers expired with nothing given back');
select tests.clear_authentication();
select is((select reserved from platform.token_balances where user_id = :'alice'), 40::bigint,
  'releasing inactive holds leaves reserved as it was');
select results_eq(
  format($$select status from platform.token_reservations where id in (%L, %L) order by status$$, :'settled_hold', :'swept_hold'),
  $$values ('expired'::text), ('settled')$$, 'inactive holds keep their status');

-- ---------------------------------------------------------------------------
-- Unknown holds and other users' holds.
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.release_token_reservation('50000000-0000-4000-8000-0000000000ff')$$,
  'PT404', 'no such reservation for this user', 'releasing an unknown hold is refused with 404');
select is(tests.refusal_code($$select platform.release_token_reservation('50000000-0000-4000-8000-0000000000ff')$$),
  'unknown_reservation', 'an unknown hold carries the code unknown_reservation');
select throws_ok($$select platform.release_token_reservation(null)$$,
  'PT404', 'no such reservation for this user', 'releasing without an id is refused with 404');
select tests.authenticate_as(:'bob');
select throws_ok(format($$select platform.release_token_reservation(%L)$$, :'svc_hold'),
  'PT404', 'no such reservation for this user', 'another user''s hold is unknown to the caller');
select throws_ok(format($$select platform.release_token_reservation(%L, %L)$$, :'svc_hold', :'alice'),
  'PT403', 'you may act only for yourself', 'a signed-in user may not release for another user');
select tests.authenticate_as(:'adam');
select throws_ok(format($$select platform.release_token_reservation(%L)$$, :'svc_hold'),
  'PT404', 'no such reservation for this user', 'an admin''s own release does not reach other users'' holds');
select throws_ok(format($$select platform.release_token_reservation(%L, %L)$$, :'svc_hold', :'alice'),
  'PT403', 'you may act only for yourself', 'an admin may not release for another user');
select tests.clear_authentication();
select is((select status from platform.token_reservations where id = :'svc_hold'), 'active',
  'refused releases leave the hold active');

select tests.authenticate_as_anon();
select throws_ok(format($$select platform.release_token_reservation(%L)$$, :'svc_hold'),
  '42501', 'permission denied for function release_token_reservation', 'anon may not release');
select tests.authenticate_as('40000000-0000-4000-8000-0000000000ee');
select throws_ok(format($$select platform.release_token_reservation(%L)$$, :'svc_hold'),
  'PT404', 'the user is not registered on the platform', 'a signed-in user not on the platform is refused');

-- ---------------------------------------------------------------------------
-- The service role names the user.
select tests.authenticate_as_service_role();
select throws_ok(format($$select platform.release_token_reservation(%L)$$, :'svc_hold'),
  'PT422', 'p_user_id is required when acting as the service role', 'the service role must name the user');
select is(tests.refusal_code(format($$select platform.release_token_reservation(%L)$$, :'svc_hold')),
  'user_id_required', 'a missing user carries the code user_id_required');
select throws_ok(format($$select platform.release_token_reservation(%L, %L)$$, :'svc_hold', :'bob'),
  'PT404', 'no such reservation for this user', 'the service role naming the wrong user finds no hold');
select is(platform.release_token_reservation(:'svc_hold', :'alice'),
  jsonb_build_object('reservation_id', :'svc_hold', 'status', 'released', 'released_tokens', 40),
  'the service role releases a hold for the user it names');
select tests.clear_authentication();
select is((select reserved from platform.token_balances where user_id = :'alice'), 0::bigint,
  'the released hold leaves reserved');

-- ---------------------------------------------------------------------------
-- Only the caller that took a hold releases it early.
select tests.authenticate_as_service_role();
select platform.reserve_tokens(10, 60, :'alice', 'a1000000-0000-4000-8000-000000000001') ->> 'reservation_id'
  as key_hold \gset
select throws_ok(format($$select platform.release_token_reservation(%L, %L, %L)$$,
    :'key_hold', :'alice', 'a1000000-0000-4000-8000-000000000002'),
  'PT403', 'only the caller that took this hold may release it early',
  'another API key of the same user may not release a hold taken with a key');
select is(tests.refusal_code(format($$select platform.release_token_reservation(%L, %L, %L)$$,
    :'key_hold', :'alice', 'a1000000-0000-4000-8000-000000000002')),
  'not_reservation_holder', 'a hold taken by another caller carries the code not_reservation_holder');
select throws_ok(format($$select platform.release_token_reservation(%L, %L)$$, :'key_hold', :'alice'),
  'PT403', 'only the caller that took this hold may release it early',
  'the service role naming no key may not release a hold taken with a key');
select tests.authenticate_as(:'alice');
select throws_ok(format($$select platform.release_token_reservation(%L)$$, :'key_hold'),
  'PT403', 'only the caller that took this hold may release it early',
  'the user''s own token may not release a hold taken with one of their keys');
select platform.reserve_tokens(20) ->> 'reservation_id' as token_hold \gset
select tests.authenticate_as_service_role();
select throws_ok(format($$select platform.release_token_reservation(%L, %L, %L)$$,
    :'token_hold', :'alice', 'a1000000-0000-4000-8000-000000000001'),
  'PT403', 'only the caller that took this hold may release it early',
  'an API key may not release a hold taken with the user''s token');
select is((select count(*) from platform.token_reservations where id in (:'key_hold', :'token_hold') and status = 'active'),
  2::bigint, 'refused releases leave both holds active');
select is(platform.release_token_reservation(:'key_hold', :'alice', 'a1000000-0000-4000-8000-000000000001') -> 'released_tokens',
  '10'::jsonb, 'the key that took a hold releases it');
select tests.authenticate_as(:'alice');
select is(platform.release_token_reservation(:'token_hold') -> 'released_tokens',
  '20'::jsonb, 'the user''s token releases a hold taken with their token');
select tests.clear_authentication();

-- A viewer may give back a hold (releasing spends nothing).
select tests.authenticate_as(:'vera');
select is(platform.release_token_reservation(:'vera_hold') -> 'released_tokens', '200'::jsonb,
  'a viewer may release their own hold');
select tests.clear_authentication();
select is((select reserved from platform.token_balances where user_id = :'vera'), 0::bigint,
  'the viewer''s hold leaves reserved');

select results_eq(
  $$select b.user_id, b.reserved from platform.token_balances b
     where b.user_id in (select user_id from platform.token_reservations) order by 1$$,
  $$select r.user_id, coalesce(sum(r.tokens) filter (where r.status = 'active'), 0)::bigint
      from platform.token_reservations r group by 1 order by 1$$,
  'reserved equals the sum of active holds, for every user');

select * from finish();
rollback;
