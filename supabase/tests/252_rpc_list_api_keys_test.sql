-- list_api_keys: a user's own keys, newest first, without the secret hash.
begin;
select plan(6);

select tests.create_user('lister@example.com') as lister \gset
select tests.create_user('other@example.com') as other \gset

-- Keys are created as POST /v1/api-keys does: the service role naming the user.
select tests.authenticate_as_service_role();
select platform.create_api_key('first', 'cds_aaaaaaa10000000000000000', repeat('a', 64), p_user_id => :'lister');
select platform.create_api_key('second', 'cds_aaaaaaa20000000000000000', repeat('b', 64), p_user_id => :'lister');
select platform.create_api_key('theirs', 'cds_bbbbbbb10000000000000000', repeat('c', 64), p_user_id => :'other');

-- One transaction has one now(): age the first key so the order is observable.
select tests.clear_authentication();
update platform.api_keys set created_at = now() - interval '1 hour' where prefix = 'cds_aaaaaaa10000000000000000';

select tests.authenticate_as(:'lister');
select is(jsonb_array_length(platform.list_api_keys()), 2, 'a user lists exactly their own keys');
select ok(
  (select bool_and(not (k ? 'secret_hash')) from jsonb_array_elements(platform.list_api_keys()) k),
  'no listed key carries its hash');
select is(
  (select array_agg(k ->> 'name' order by ord) from jsonb_array_elements(platform.list_api_keys()) with ordinality t(k, ord)),
  array['second', 'first'], 'newest first');
select is(platform.list_api_keys() -> 0 ->> 'prefix', 'cds_aaaaaaa20000000000000000', 'the visible prefix is listed');

select tests.clear_authentication();
select tests.authenticate_as(:'other');
select is(platform.list_api_keys() -> 0 ->> 'name', 'theirs', 'another user sees only theirs');

select tests.authenticate_as_anon();
select throws_ok($$ select platform.list_api_keys() $$, '42501',
  'permission denied for function list_api_keys', 'anon cannot list keys');

select * from finish();
rollback;
