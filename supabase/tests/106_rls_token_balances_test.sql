-- platform.token_balances: a user reads their own balance and an admin reads
-- every balance. Nobody writes the table directly, the service role included:
-- balances change only inside the RPCs, so they cannot drift from the ledgers.
begin;
select plan(26);

-- Fixtures: users (create_user gives each a balance row) and a grant to the owner.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.grant_tokens(:'owner', 1000);
select tests.grant_tokens(:'stranger', 50);
select count(*) as all_balances from platform.token_balances \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.token_balances $$,
  '42501', 'permission denied for table token_balances', 'anon cannot read balances');
select throws_ok(format($$ insert into platform.token_balances (user_id, granted) values (%L, 1) $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'anon cannot insert balances');
select throws_ok($$ update platform.token_balances set granted = granted + 1000000 $$,
  '42501', 'permission denied for table token_balances', 'anon cannot update balances');
select throws_ok($$ delete from platform.token_balances $$,
  '42501', 'permission denied for table token_balances', 'anon cannot delete balances');

-- the owner --------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select user_id, balance from platform.token_balances $$,
  format('values (%L::uuid, 1000::bigint)', :'owner'), 'a user reads exactly their own balance');
select throws_ok(format($$ insert into platform.token_balances (user_id, granted) values (%L, 1) $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'a user cannot insert a balance');
select throws_ok(format($$ update platform.token_balances set granted = granted + 1000000 where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'a user cannot top up their own balance');
select throws_ok(format($$ update platform.token_balances set reserved = 0 where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'a user cannot release their own holds directly');
select throws_ok(format($$ delete from platform.token_balances where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'a user cannot delete their own balance');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select is((select count(*) from platform.token_balances where user_id = :'owner'), 0::bigint,
  'a stranger does not see someone else''s balance');
select results_eq($$ select user_id from platform.token_balances $$, format('values (%L::uuid)', :'stranger'),
  'a stranger sees only their own balance');
select throws_ok(format($$ update platform.token_balances set used = used + 1000 where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'a stranger cannot drain someone else''s balance');
select throws_ok(format($$ delete from platform.token_balances where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'a stranger cannot delete someone else''s balance');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.token_balances), :all_balances::bigint, 'an admin reads every balance');
select throws_ok(format($$ insert into platform.token_balances (user_id) values (%L) $$, :'admin'),
  '42501', 'permission denied for table token_balances', 'an admin cannot insert balances directly');
select throws_ok(format($$ update platform.token_balances set granted = granted + 1 where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances',
  'an admin cannot change balances directly (grant_user_tokens does)');
select throws_ok(format($$ delete from platform.token_balances where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'an admin cannot delete balances');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.token_balances), :all_balances::bigint, 'the service role reads every balance');
select throws_ok(format($$ insert into platform.token_balances (user_id) values (%L) $$, :'admin'),
  '42501', 'permission denied for table token_balances', 'the service role cannot insert balances directly');
select throws_ok(format($$ update platform.token_balances set granted = granted + 1 where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'the service role cannot change balances directly');
select throws_ok(format($$ delete from platform.token_balances where user_id = %L $$, :'owner'),
  '42501', 'permission denied for table token_balances', 'the service role cannot delete balances');
select throws_ok($$ truncate platform.token_balances $$,
  '42501', 'permission denied for table token_balances', 'the service role cannot truncate balances');

-- Every refusal left the balances as the grants made them.
select tests.clear_authentication();
select results_eq(
  format($$ select user_id, granted, used, reserved from platform.token_balances
             where user_id in (%L, %L) order by granted desc $$, :'owner', :'stranger'),
  format($$ values (%L::uuid, 1000::bigint, 0::bigint, 0::bigint), (%L::uuid, 50, 0, 0) $$, :'owner', :'stranger'),
  'balances are exactly what the grants made them');
select is((select count(*) from platform.token_balances), :all_balances::bigint, 'no balance was added or removed');

-- The RPCs remain the way balances change, for whoever may call them.
select tests.authenticate_as(:'owner');
select lives_ok($$ select platform.reserve_tokens(100) $$, 'the owner holds tokens through reserve_tokens');
select is((select reserved from platform.token_balances where user_id = :'owner'), 100::bigint, 'and sees the hold on their balance');

select * from finish();
rollback;
