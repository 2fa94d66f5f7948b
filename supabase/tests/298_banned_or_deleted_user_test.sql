-- A banned (banned_until in the future) or soft-deleted (deleted_at)
-- Supabase user: the auth.users row stays, but their tokens and API keys stop
-- working. Refused with 403 user_banned / user_deleted on every path: their
-- own token, the service role acting for them (an API key the edge
-- resolved), resolving their key, mirroring them, and queued usage, kept in
-- usage_rejections with the reason. A ban that has run out lets them back.
begin;
select plan(16);

select tests.create_user('b-bob@example.test') as bob \gset
select tests.create_user('b-dora@example.test') as dora \gset
select tests.create_user('b-olga@example.test') as olga \gset
select tests.grant_tokens(:'bob', 10000);
select tests.grant_tokens(:'dora', 10000);
select tests.grant_tokens(:'olga', 10000);
insert into platform.api_keys (user_id, name, prefix, secret_hash) values
  (:'bob', 'bob', 'cds_bban00010000000000000000', repeat('a', 64)),
  (:'dora', 'dora', 'cds_bdel00010000000000000000', repeat('b', 64));
update auth.users set banned_until = now() + interval '1 day' where id = :'bob';
update auth.users set deleted_at = now() where id = :'dora';
-- Olga's ban is over.
update auth.users set banned_until = now() - interval '1 minute' where id = :'olga';

-- Their own tokens.
select tests.authenticate_as(:'bob');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'b-1')$$,
  'PT403', 'this user is banned', 'a banned user cannot spend with their token');
select is(tests.refusal_code($$select platform.get_usage_overview()$$), 'user_banned',
  'a banned user cannot read through the RPCs either (user_banned)');
select tests.authenticate_as(:'dora');
select throws_ok($$select platform.list_api_keys()$$,
  'PT403', 'this user has been deleted', 'a deleted user''s token is refused');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'd-1')$$),
  'user_deleted', 'the code is user_deleted');
select tests.authenticate_as(:'olga');
select is(platform.record_token_usage('gpt-4o-mini', 1, 1, 'o-1') ->> 'total_tokens', '2',
  'a user whose ban has run out spends again');

-- The service role: resolving their keys, acting for them, mirroring them.
select tests.authenticate_as_service_role();
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_bban00010000000000000000', %L)$$, repeat('a', 64))),
  'user_banned', 'a banned user''s API key does not resolve');
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_bdel00010000000000000000', %L)$$, repeat('b', 64))),
  'user_deleted', 'a deleted user''s API key does not resolve');
select is(tests.refusal_code(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'b-2', p_user_id => %L)$$, :'bob')),
  'user_banned', 'the service role cannot spend for a banned user');
select is(tests.refusal_code(format($$select platform.mirror_auth_user(%L, p_source => 'jit')$$, :'bob')),
  'user_banned', 'mirroring does not vouch for a banned user');
select is(tests.refusal_code(format($$select platform.mirror_auth_user(%L, p_source => 'jit')$$, :'dora')),
  'user_deleted', 'mirroring does not vouch for a deleted user');
-- Nor re-creates one whose platform row is gone.
reset role;
delete from platform.token_balances where user_id = :'dora';
delete from platform.api_keys where user_id = :'dora';
delete from platform.users where id = :'dora';
select tests.authenticate_as_service_role();
select is(tests.refusal_code(format($$select platform.mirror_auth_user(%L, p_source => 'jit')$$, :'dora')),
  'user_deleted', 'mirroring does not re-create a deleted user');
reset role;
select is((select count(*) from platform.users where id = :'dora'), 0::bigint, 'the deleted user stays gone');

-- Queued usage: rejected with the reason, kept.
select tests.authenticate_as_service_role();
select is(platform.record_queued_usage(jsonb_build_array(jsonb_build_object('user_id', :'bob', 'api_key_id', null,
    'event', jsonb_build_object('idempotency_key', 'b-q', 'model', 'gpt-4o-mini',
                                'prompt_tokens', 10, 'completion_tokens', 5)))) -> 'rejections' -> 0 -> 'error' ->> 'code',
  'user_banned', 'queued usage of a banned user is rejected as user_banned');
reset role;
select is((select code from platform.usage_rejections where user_id = :'bob' and idempotency_key = 'b-q'),
  'user_banned', 'and the rejection keeps the reason');

-- A banned admin is not served as admin.
select tests.create_user('b-ada@example.test', 'admin') as ada \gset
update auth.users set banned_until = now() + interval '1 day' where id = :'ada';
select tests.authenticate_as(:'ada');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(%L, 10, 'gift')$$, :'olga')),
  'user_banned', 'a banned admin cannot grant');
select is(tests.refusal_code($$select platform.metrics_snapshot()$$),
  'user_banned', 'nor read the metrics');

select * from finish();
rollback;
