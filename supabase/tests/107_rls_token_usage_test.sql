-- platform.token_usage: the append-only usage ledger. A user reads their own
-- usage and an admin reads all of it; nobody inserts, updates or deletes rows
-- directly, the service role included: usage is recorded only by
-- record_token_usage(_batch), and even the table's owner cannot rewrite a row.
begin;
select plan(27);

-- Fixtures: one usage event each for the owner and the stranger, recorded
-- through the RPC as the user would.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
select tests.authenticate_as(:'owner');
select (platform.record_token_usage('gpt-4o-mini', 100, 50, 'owner-event-1') ->> 'usage_id')::bigint as owner_usage \gset
select tests.authenticate_as(:'stranger');
select (platform.record_token_usage('gpt-4o-mini', 7, 3, 'stranger-event-1') ->> 'usage_id')::bigint as stranger_usage \gset
select tests.clear_authentication();
select (select id from platform.models where name = 'gpt-4o-mini') as model \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.token_usage $$,
  '42501', 'permission denied for table token_usage', 'anon cannot read usage');
select throws_ok(
  format($$ insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                              cost, idempotency_key, balance_after)
            values (%L, %s, 0, 0, 0, 0, 'forged', 0) $$, :'owner', :model),
  '42501', 'permission denied for table token_usage', 'anon cannot insert usage');
select throws_ok($$ update platform.token_usage set total_tokens = 0 $$,
  '42501', 'permission denied for table token_usage', 'anon cannot update usage');
select throws_ok($$ delete from platform.token_usage $$,
  '42501', 'permission denied for table token_usage', 'anon cannot delete usage');

-- the owner --------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id, total_tokens from platform.token_usage $$,
  format('values (%s::bigint, 150::bigint)', :owner_usage), 'a user reads exactly their own usage');
select throws_ok(
  format($$ insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                              cost, idempotency_key, balance_after)
            values (%L, %s, 0, 0, 0, 0, 'forged', 1000000) $$, :'owner', :model),
  '42501', 'permission denied for table token_usage', 'a user cannot insert usage directly');
select throws_ok(format($$ update platform.token_usage set prompt_tokens = 0, completion_tokens = 0, total_tokens = 0
                          where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'a user cannot rewrite their own usage');
select throws_ok(format($$ delete from platform.token_usage where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'a user cannot erase their own usage');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select is((select count(*) from platform.token_usage where user_id = :'owner'), 0::bigint,
  'a stranger does not see someone else''s usage');
select results_eq($$ select id from platform.token_usage $$, format('values (%s::bigint)', :stranger_usage),
  'a stranger sees only their own usage');
select throws_ok(
  format($$ insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                              cost, idempotency_key, balance_after)
            values (%L, %s, 1000000, 0, 1000000, 0, 'charged-to-owner', 0) $$, :'owner', :model),
  '42501', 'permission denied for table token_usage', 'a stranger cannot charge usage to someone else');
select throws_ok(format($$ update platform.token_usage set total_tokens = 0 where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'a stranger cannot update someone else''s usage');
select throws_ok(format($$ delete from platform.token_usage where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'a stranger cannot delete someone else''s usage');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.token_usage where id in (:owner_usage, :stranger_usage)), 2::bigint,
  'an admin reads everyone''s usage');
select throws_ok(
  format($$ insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                              cost, idempotency_key, balance_after)
            values (%L, %s, 0, 0, 0, 0, 'admin-entry', 0) $$, :'owner', :model),
  '42501', 'permission denied for table token_usage', 'an admin cannot insert usage directly');
select throws_ok(format($$ update platform.token_usage set cost = 0 where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'an admin cannot update usage');
select throws_ok(format($$ delete from platform.token_usage where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'an admin cannot delete usage');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.token_usage where id in (:owner_usage, :stranger_usage)), 2::bigint,
  'the service role reads everyone''s usage');
select throws_ok(
  format($$ insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                                              cost, idempotency_key, balance_after)
            values (%L, %s, 0, 0, 0, 0, 'service-entry', 0) $$, :'owner', :model),
  '42501', 'permission denied for table token_usage',
  'the service role cannot insert usage directly (record_token_usage does)');
select throws_ok(format($$ update platform.token_usage set cost = 0 where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'the service role cannot update usage');
select throws_ok(format($$ delete from platform.token_usage where id = %s $$, :owner_usage),
  '42501', 'permission denied for table token_usage', 'the service role cannot delete usage');
select throws_ok($$ truncate platform.token_usage $$,
  '42501', 'permission denied for table token_usage', 'the service role cannot truncate usage');

-- the table's owner ------------------------------------------------------------
-- Privileges do not bind the owner; the append-only trigger does.
select tests.clear_authentication();
select throws_ok(format($$ update platform.token_usage set total_tokens = 0, prompt_tokens = 0, completion_tokens = 0
                          where id = %s $$, :owner_usage),
  'PT409', 'token_usage is an append-only ledger', 'not even the table''s owner rewrites usage');

select results_eq(
  $$ select user_id, total_tokens from platform.token_usage order by total_tokens desc $$,
  format($$ values (%L::uuid, 150::bigint), (%L::uuid, 10::bigint) $$, :'owner', :'stranger'),
  'the ledger holds exactly the two recorded events, unchanged');

-- Recording through the RPC stays possible for the service role and the user.
select tests.authenticate_as_service_role();
select lives_ok(format($$ select platform.record_token_usage('gpt-4o-mini', 1, 1, 'edge-event', p_user_id => %L) $$, :'owner'),
  'the service role records usage through record_token_usage');
select tests.authenticate_as(:'owner');
select throws_ok(format($$ select platform.record_token_usage('gpt-4o-mini', 1, 1, 'on-behalf', p_user_id => %L) $$, :'stranger'),
  'PT403', 'you may act only for yourself', 'a user cannot record usage for someone else through the RPC');
select is((select count(*) from platform.token_usage), 2::bigint, 'the owner now sees their two events');

select * from finish();
rollback;
