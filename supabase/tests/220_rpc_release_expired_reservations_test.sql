-- platform.release_expired_reservations: the scheduled sweep (service role)
-- that closes every active hold past its expiry and returns its tokens.
begin;
select plan(14);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 1000);
select tests.grant_tokens(:'bob', 1000);

select tests.authenticate_as(:'alice');
select platform.reserve_tokens(100) ->> 'reservation_id' as a1 \gset
select platform.reserve_tokens(200) ->> 'reservation_id' as a2 \gset
select platform.reserve_tokens(50) ->> 'reservation_id' as a3 \gset
select platform.reserve_tokens(10) ->> 'reservation_id' as a4 \gset
select tests.authenticate_as(:'bob');
select platform.reserve_tokens(70) ->> 'reservation_id' as b1 \gset
select platform.reserve_tokens(30) ->> 'reservation_id' as b2 \gset
select platform.reserve_tokens(20) ->> 'reservation_id' as b3 \gset
select platform.record_token_usage('gpt-4o-mini', 25, 0, 'evt-b2', p_reservation_id => :'b2') \g /dev/null
select platform.release_token_reservation(:'b3') \g /dev/null
select tests.clear_authentication();

-- Time passes: a1, a2 and b1 lapsed; a4 expires exactly now; a3 is still
-- running; b2 (settled) and b3 (released) lapsed too but are closed already.
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes'
 where id in (:'a1', :'a2', :'b1', :'b2', :'b3');
update platform.token_reservations
   set created_at = now() - interval '5 minutes', expires_at = now()
 where id = :'a4';

select tests.authenticate_as_service_role();
select is(platform.release_expired_reservations(), '{"released": 4, "tokens": 380}'::jsonb,
  'the sweep answers how many holds and tokens went back');
select tests.clear_authentication();
select results_eq(
  format($$select id, status, closed_at is not null from platform.token_reservations
            where id in (%L, %L, %L, %L, %L, %L, %L) order by tokens$$,
         :'a1', :'a2', :'a3', :'a4', :'b1', :'b2', :'b3'),
  format($$values (%L::uuid, 'expired'::text, true), (%L::uuid, 'released', true), (%L::uuid, 'settled', true),
                  (%L::uuid, 'active', false), (%L::uuid, 'expired', true), (%L::uuid, 'expired', true),
                  (%L::uuid, 'expired', true)$$,
         :'a4', :'b3', :'b2', :'a3', :'b1', :'a1', :'a2'),
  'lapsed active holds (expiry now included) are expired; running and closed holds are untouched');
select results_eq(
  format($$select user_id, used, reserved from platform.token_balances where user_id in (%L, %L) order by reserved$$,
         :'alice', :'bob'),
  format($$values (%L::uuid, 25::bigint, 0::bigint), (%L::uuid, 0::bigint, 50::bigint)$$, :'bob', :'alice'),
  'each user''s reserved drops by their lapsed holds and nothing is spent');

select tests.authenticate_as_service_role();
select is(platform.release_expired_reservations(), '{"released": 0, "tokens": 0}'::jsonb,
  'a second sweep finds nothing');
select tests.clear_authentication();
select is((select reserved from platform.token_balances where user_id = :'alice'), 50::bigint,
  'a second sweep releases nothing twice');

select results_eq(
  $$select b.user_id, b.reserved from platform.token_balances b
     where b.user_id in (select user_id from platform.token_reservations) order by 1$$,
  $$select r.user_id, coalesce(sum(r.tokens) filter (where r.status = 'active'), 0)::bigint
      from platform.token_reservations r group by 1 order by 1$$,
  'reserved equals the sum of active holds, for every user');

-- The running hold is swept once it lapses too.
update platform.token_reservations
   set created_at = now() - interval '10 minutes', expires_at = now() - interval '1 second'
 where id = :'a3';
select tests.authenticate_as_service_role();
select is(platform.release_expired_reservations(), '{"released": 1, "tokens": 50}'::jsonb,
  'a hold is swept once it lapses');
select tests.clear_authentication();
select is((select reserved from platform.token_balances where user_id = :'alice'), 0::bigint,
  'with every hold swept, nothing is reserved');

-- ---------------------------------------------------------------------------
-- Only the service role sweeps.
select tests.authenticate_as_anon();
select throws_ok($$select platform.release_expired_reservations()$$,
  '42501', 'permission denied for function release_expired_reservations', 'anon may not sweep');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.release_expired_reservations()$$,
  '42501', 'permission denied for function release_expired_reservations', 'a signed-in user may not sweep');
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.release_expired_reservations()$$,
  '42501', 'permission denied for function release_expired_reservations', 'an admin may not sweep');
-- The owner's session without the service role's claims (e.g. a direct
-- database connection) is refused by the function itself.
select tests.clear_authentication();
select throws_ok($$select platform.release_expired_reservations()$$,
  'PT403', 'only the service role releases expired reservations', 'a caller without service-role claims is refused');
select is(tests.refusal_code($$select platform.release_expired_reservations()$$), 'forbidden',
  'the refusal carries the code forbidden');
select tests.authenticate_as(:'alice');
select set_config('request.jwt.claims', '{"role": "authenticated"}', true) \g /dev/null
select set_config('role', 'service_role', true) \g /dev/null
select throws_ok($$select platform.release_expired_reservations()$$,
  'PT403', 'only the service role releases expired reservations',
  'the service role''s database role without its JWT role claim is refused');

select * from finish();
rollback;
