-- Anonymous sign-ins (is_anonymous: true in the token and in auth.users,
-- role authenticated) may read but never spend, hold tokens or get an API
-- key: 403 anonymous_user_read_only, whether they call with their own token
-- straight through the REST layer or the service role acts for them. (The
-- edge may be stricter: ANONYMOUS_USERS = deny.)
begin;
select plan(8);

select tests.create_user('anon-ann@example.test') as ann \gset
select tests.grant_tokens(:'ann', 10000);
update auth.users set is_anonymous = true where id = :'ann';
select tests.create_user('anon-bea@example.test') as bea \gset
select tests.grant_tokens(:'bea', 10000);

create function pg_temp.as_anonymous(p_user_id uuid) returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims',
    jsonb_build_object('sub', p_user_id, 'role', 'authenticated', 'aud', 'authenticated',
                       'is_anonymous', true)::text, true);
  perform set_config('role', 'authenticated', true);
end
$$;
-- Called again under the API roles below; functions are not executable by
-- PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

select pg_temp.as_anonymous(:'ann');
select throws_ok($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'a-1')$$,
  'PT403', 'anonymous users may only read; sign in with an account to do this',
  'an anonymous user cannot spend with their token');
select is(tests.refusal_code($$select platform.reserve_tokens(10, 60)$$), 'anonymous_user_read_only',
  'nor hold tokens');
select is(platform.get_usage_overview() ->> 'user_id', :'ann', 'but may read their overview');
select is(platform.list_api_keys(), '[]'::jsonb, 'and list their (no) API keys');

-- The service role acting for them (an API key, or POST /v1/api-keys).
select tests.authenticate_as_service_role();
select is(tests.refusal_code(format($$select platform.create_api_key('k', 'cds_anon00010000000000000000', %L, p_user_id => %L)$$,
                                    repeat('c', 64), :'ann')),
  'anonymous_user_read_only', 'no API key is created for an anonymous user');
select is(tests.refusal_code(format($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'a-2', p_user_id => %L)$$, :'ann')),
  'anonymous_user_read_only', 'the service role cannot spend for an anonymous user');

-- The claim alone suffices (a user whose auth.users row says otherwise
-- still presents an anonymous token), and a signed-in account is unaffected.
select pg_temp.as_anonymous(:'bea');
select is(tests.refusal_code($$select platform.record_token_usage('gpt-4o-mini', 1, 1, 'b-1')$$),
  'anonymous_user_read_only', 'a token claiming is_anonymous cannot spend');
select tests.authenticate_as(:'bea');
select is(platform.record_token_usage('gpt-4o-mini', 1, 1, 'b-2') ->> 'total_tokens', '2',
  'the same user signed in with an account spends');

select * from finish();
rollback;
