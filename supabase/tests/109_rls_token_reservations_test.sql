-- platform.token_reservations: holds taken before an LLM call. A user reads
-- their own holds and an admin reads every hold; nobody writes the table
-- directly, the service role included: holds are taken, settled and released
-- only by reserve_tokens, record_token_usage(_batch), release_token_reservation
-- and release_expired_reservations, which keep token_balances.reserved in step.
begin;
select plan(26);

-- Fixtures: a balance and one hold each for the owner and the stranger.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.grant_tokens(:'owner', 1000);
select tests.grant_tokens(:'stranger', 1000);
select tests.authenticate_as(:'owner');
select platform.reserve_tokens(300) ->> 'reservation_id' as owner_hold \gset
select tests.authenticate_as(:'stranger');
select platform.reserve_tokens(20) ->> 'reservation_id' as stranger_hold \gset
select tests.clear_authentication();

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.token_reservations $$,
  '42501', 'permission denied for table token_reservations', 'anon cannot read holds');
select throws_ok(
  format($$ insert into platform.token_reservations (user_id, tokens, expires_at)
            values (%L, 1, now() + interval '1 minute') $$, :'owner'),
  '42501', 'permission denied for table token_reservations', 'anon cannot insert holds');
select throws_ok($$ update platform.token_reservations set status = 'released', closed_at = now() $$,
  '42501', 'permission denied for table token_reservations', 'anon cannot update holds');
select throws_ok($$ delete from platform.token_reservations $$,
  '42501', 'permission denied for table token_reservations', 'anon cannot delete holds');

-- the owner --------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id, tokens, status from platform.token_reservations $$,
  format($$ values (%L::uuid, 300::bigint, 'active'::text) $$, :'owner_hold'), 'a user reads exactly their own holds');
select throws_ok(
  format($$ insert into platform.token_reservations (user_id, tokens, expires_at)
            values (%L, 1, now() + interval '1 minute') $$, :'owner'),
  '42501', 'permission denied for table token_reservations', 'a user cannot insert holds directly');
select throws_ok(format($$ update platform.token_reservations set tokens = 1 where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'a user cannot shrink their own hold');
select throws_ok(format($$ delete from platform.token_reservations where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'a user cannot delete their own hold');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select is((select count(*) from platform.token_reservations where user_id = :'owner'), 0::bigint,
  'a stranger does not see someone else''s holds');
select results_eq($$ select id from platform.token_reservations $$, format('values (%L::uuid)', :'stranger_hold'),
  'a stranger sees only their own holds');
select throws_ok(format($$ update platform.token_reservations set expires_at = now() where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'a stranger cannot update someone else''s hold');
select throws_ok(format($$ delete from platform.token_reservations where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'a stranger cannot delete someone else''s hold');
select throws_ok(format($$ select platform.release_token_reservation(%L) $$, :'owner_hold'),
  'PT404', 'no such reservation for this user', 'a stranger cannot release someone else''s hold through the RPC');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.token_reservations where id in (:'owner_hold', :'stranger_hold')), 2::bigint,
  'an admin reads every hold');
select throws_ok(
  format($$ insert into platform.token_reservations (user_id, tokens, expires_at)
            values (%L, 1, now() + interval '1 minute') $$, :'owner'),
  '42501', 'permission denied for table token_reservations', 'an admin cannot insert holds directly');
select throws_ok(format($$ update platform.token_reservations set status = 'released', closed_at = now() where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'an admin cannot update holds directly');
select throws_ok(format($$ delete from platform.token_reservations where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'an admin cannot delete holds');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.token_reservations where id in (:'owner_hold', :'stranger_hold')), 2::bigint,
  'the service role reads every hold');
select throws_ok(
  format($$ insert into platform.token_reservations (user_id, tokens, expires_at)
            values (%L, 1, now() + interval '1 minute') $$, :'owner'),
  '42501', 'permission denied for table token_reservations',
  'the service role cannot insert holds directly (reserve_tokens does)');
select throws_ok(format($$ update platform.token_reservations set status = 'expired', closed_at = now() where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'the service role cannot update holds directly');
select throws_ok(format($$ delete from platform.token_reservations where id = %L $$, :'owner_hold'),
  '42501', 'permission denied for table token_reservations', 'the service role cannot delete holds');
select throws_ok($$ truncate platform.token_reservations $$,
  '42501', 'permission denied for table token_reservations', 'the service role cannot truncate holds');

-- Every refusal left the holds, and the balances they count against, as they were.
select tests.clear_authentication();
select results_eq(
  $$ select user_id, tokens, status from platform.token_reservations order by tokens desc $$,
  format($$ values (%L::uuid, 300::bigint, 'active'::text), (%L::uuid, 20::bigint, 'active'::text) $$, :'owner', :'stranger'),
  'the two holds are unchanged');
select is((select reserved from platform.token_balances where user_id = :'owner'), 300::bigint,
  'the owner''s balance still counts their hold');

-- The owner gives their hold back through the RPC.
select tests.authenticate_as(:'owner');
select lives_ok(format($$ select platform.release_token_reservation(%L) $$, :'owner_hold'),
  'the owner releases their hold through release_token_reservation');
select is((select status from platform.token_reservations where id = :'owner_hold'), 'released',
  'and sees it released');

select * from finish();
rollback;
