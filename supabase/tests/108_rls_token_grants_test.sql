-- platform.token_grants: the append-only audit ledger of grants. A user reads
-- the grants made to them and an admin reads all of them; nobody writes the
-- table directly, the service role included: grants are made only by
-- grant_user_tokens, and even the table's owner cannot rewrite one.
begin;
select plan(27);

-- Fixtures: one grant each to the owner and the stranger, made as the service role would.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.grant_tokens(:'owner', 1000);
select tests.grant_tokens(:'stranger', 50);
select id as owner_grant from platform.token_grants where user_id = :'owner' \gset
select id as stranger_grant from platform.token_grants where user_id = :'stranger' \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.token_grants $$,
  '42501', 'permission denied for table token_grants', 'anon cannot read grants');
select throws_ok(
  format($$ insert into platform.token_grants (user_id, amount, reason, granted_by_role)
            values (%L, 1000000, 'free tokens', 'service_role') $$, :'owner'),
  '42501', 'permission denied for table token_grants', 'anon cannot insert grants');
select throws_ok($$ update platform.token_grants set amount = 1000000 $$,
  '42501', 'permission denied for table token_grants', 'anon cannot update grants');
select throws_ok($$ delete from platform.token_grants $$,
  '42501', 'permission denied for table token_grants', 'anon cannot delete grants');

-- the owner --------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id, amount from platform.token_grants $$,
  format('values (%s::bigint, 1000::bigint)', :owner_grant), 'a user reads exactly the grants made to them');
select throws_ok(
  format($$ insert into platform.token_grants (user_id, amount, reason, granted_by_role)
            values (%L, 1000000, 'free tokens', 'admin') $$, :'owner'),
  '42501', 'permission denied for table token_grants', 'a user cannot grant themselves tokens');
select throws_ok(format($$ update platform.token_grants set amount = 1000000 where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'a user cannot inflate a grant');
select throws_ok(format($$ delete from platform.token_grants where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'a user cannot delete a grant');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select is((select count(*) from platform.token_grants where user_id = :'owner'), 0::bigint,
  'a stranger does not see grants made to someone else');
select results_eq($$ select id from platform.token_grants $$, format('values (%s::bigint)', :stranger_grant),
  'a stranger sees only the grants made to them');
select throws_ok(
  format($$ insert into platform.token_grants (user_id, amount, reason, granted_by_role)
            values (%L, 1, 'x', 'admin') $$, :'owner'),
  '42501', 'permission denied for table token_grants', 'a stranger cannot insert grants for someone else');
select throws_ok(format($$ update platform.token_grants set amount = 1 where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'a stranger cannot update someone else''s grant');
select throws_ok(format($$ delete from platform.token_grants where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'a stranger cannot delete someone else''s grant');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.token_grants where id in (:owner_grant, :stranger_grant)), 2::bigint,
  'an admin reads every grant');
select throws_ok(
  format($$ insert into platform.token_grants (user_id, amount, reason, granted_by, granted_by_role)
            values (%L, 1, 'bypassing the RPC', %L, 'admin') $$, :'owner', :'admin'),
  '42501', 'permission denied for table token_grants',
  'an admin cannot insert grants directly (grant_user_tokens does)');
select throws_ok(format($$ update platform.token_grants set reason = 'rewritten' where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'an admin cannot rewrite the audit ledger');
select throws_ok(format($$ delete from platform.token_grants where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'an admin cannot delete from the audit ledger');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.token_grants where id in (:owner_grant, :stranger_grant)), 2::bigint,
  'the service role reads every grant');
select throws_ok(
  format($$ insert into platform.token_grants (user_id, amount, reason, granted_by_role)
            values (%L, 1, 'bypassing the RPC', 'service_role') $$, :'owner'),
  '42501', 'permission denied for table token_grants',
  'the service role cannot insert grants directly (grant_user_tokens does)');
select throws_ok(format($$ update platform.token_grants set amount = 1 where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'the service role cannot update grants');
select throws_ok(format($$ delete from platform.token_grants where id = %s $$, :owner_grant),
  '42501', 'permission denied for table token_grants', 'the service role cannot delete grants');
select throws_ok($$ truncate platform.token_grants $$,
  '42501', 'permission denied for table token_grants', 'the service role cannot truncate grants');

-- the table's owner ------------------------------------------------------------
select tests.clear_authentication();
select throws_ok(format($$ update platform.token_grants set amount = 1 where id = %s $$, :owner_grant),
  'PT409', 'token_grants is an append-only ledger', 'not even the table''s owner rewrites a grant');

select results_eq(
  format($$ select user_id, amount, reason from platform.token_grants
             where user_id in (%L, %L) order by amount desc $$, :'owner', :'stranger'),
  format($$ values (%L::uuid, 1000::bigint, 'test grant'::text), (%L::uuid, 50, 'test grant') $$, :'owner', :'stranger'),
  'the ledger holds exactly the two grants, unchanged');

-- Granting through the RPC: an admin may, a user may not.
select tests.authenticate_as(:'admin');
select lives_ok(format($$ select platform.grant_user_tokens(%L, 5, 'bonus') $$, :'owner'),
  'an admin grants tokens through grant_user_tokens');
select tests.authenticate_as(:'owner');
select throws_ok(format($$ select platform.grant_user_tokens(%L, 5, 'self-service') $$, :'owner'),
  'PT403', 'only admins grant tokens', 'a user cannot grant tokens through the RPC');
select is((select count(*) from platform.token_grants), 2::bigint, 'the owner now sees their two grants');

select * from finish();
rollback;
