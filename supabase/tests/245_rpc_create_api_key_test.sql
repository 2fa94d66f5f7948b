-- platform.create_api_key: stores a key the edge generated for the user it
-- names: the visible prefix and the SHA-256 of the secret (never the
-- secret). Only the service role (the edge) calls it, so a user can never
-- choose their own key material.
begin;
select plan(35);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select encode(extensions.digest('secret one', 'sha256'), 'hex') as hash1 \gset
select encode(extensions.digest('secret two', 'sha256'), 'hex') as hash2 \gset

-- ---------------------------------------------------------------------------
select tests.authenticate_as_service_role();
select set_config('tests.user', :'alice', true) \g /dev/null
select platform.create_api_key('  laptop  ', 'cds_abcd12340000000000000000', :'hash1', p_user_id => current_setting('tests.user')::uuid) as k1 \gset
select ok((:'k1'::jsonb ->> 'id') is not null, 'a new key answers its id');
select is(:'k1'::jsonb - 'id',
  jsonb_build_object('name', 'laptop', 'prefix', 'cds_abcd12340000000000000000', 'scopes', '["usage:write"]'::jsonb,
    'created_at', now(), 'expires_at', null),
  'a new key answers its trimmed name, prefix, scopes (default usage:write), creation time and no expiry');
select ok(not (:'k1'::jsonb ? 'secret_hash'), 'the answer does not carry the secret hash');
select tests.clear_authentication();
select results_eq(
  format($$select user_id, name, prefix, secret_hash, scopes, expires_at, revoked_at, last_used_at
             from platform.api_keys where id = %L$$, :'k1'::jsonb ->> 'id'),
  format($$values (%L::uuid, 'laptop'::text, 'cds_abcd12340000000000000000'::text, %L::text, array['usage:write'],
                   null::timestamptz, null::timestamptz, null::timestamptz)$$, :'alice', :'hash1'),
  'the key is stored for the caller with its hash');

select tests.authenticate_as_service_role();
select set_config('tests.user', :'alice', true) \g /dev/null
select is(platform.create_api_key('ci', 'cds_abcd56780000000000000000', :'hash2', array['usage:write', 'usage:read'],
            now() + interval '30 days', p_user_id => current_setting('tests.user')::uuid) - 'id' - 'created_at',
  jsonb_build_object('name', 'ci', 'prefix', 'cds_abcd56780000000000000000', 'scopes', '["usage:write", "usage:read"]'::jsonb,
    'expires_at', now() + interval '30 days'),
  'a key may carry both scopes and an expiry');

-- ---------------------------------------------------------------------------
-- Invalid input.
select throws_ok(format($$select platform.create_api_key(null, 'cds_zzzz00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'name must be 1 to 100 characters', 'a key without a name is refused');
select is(tests.refusal_code(format($$select platform.create_api_key(null, 'cds_zzzz00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64))),
  'invalid_name', 'a bad name carries the code invalid_name');
select throws_ok(format($$select platform.create_api_key('   ', 'cds_zzzz00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'name must be 1 to 100 characters', 'a blank name is refused');
select throws_ok(format($$select platform.create_api_key(%L, 'cds_zzzz00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('n', 101), repeat('a', 64)),
  'PT422', 'name must be 1 to 100 characters', 'a name over 100 characters is refused');
select throws_ok(format($$select platform.create_api_key('k', 'cds_ZZZZ00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'prefix or secret hash is malformed', 'a prefix outside cds_[0-9a-z]{24} is refused');
select is(tests.refusal_code(format($$select platform.create_api_key('k', 'cds_ZZZZ00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64))),
  'invalid_api_key_material', 'bad key material carries the code invalid_api_key_material');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz0010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'prefix or secret hash is malformed', 'a short prefix is refused');
select throws_ok(format($$select platform.create_api_key('k', null, %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'prefix or secret hash is malformed', 'a missing prefix is refused');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('A', 64)),
  'PT422', 'prefix or secret hash is malformed', 'a hash that is not lower-case hex is refused');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 63)),
  'PT422', 'prefix or secret hash is malformed', 'a hash that is not 64 characters is refused');
select throws_ok($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', 'my plain secret', p_user_id => current_setting('tests.user')::uuid)$$,
  'PT422', 'prefix or secret hash is malformed', 'a plain secret instead of its hash is refused');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, array[]::text[], p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'scopes are usage:write and/or usage:read', 'a key without scopes is refused');
select is(tests.refusal_code(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, array[]::text[], p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64))),
  'invalid_scopes', 'bad scopes carry the code invalid_scopes');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, array['usage:write', 'admin'], p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'scopes are usage:write and/or usage:read', 'an unknown scope is refused');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, null, p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'scopes are usage:write and/or usage:read', 'null scopes are refused');
select throws_ok(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, p_expires_at => now(), p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64)),
  'PT422', 'expires_at must be in the future', 'a key that expires now is refused');
select is(tests.refusal_code(format($$select platform.create_api_key('k', 'cds_zzzz00010000000000000000', %L, p_expires_at => now() - interval '1 day', p_user_id => current_setting('tests.user')::uuid)$$, repeat('a', 64))),
  'invalid_expiry', 'a past expiry carries the code invalid_expiry');
select throws_ok(format($$select platform.create_api_key('copy', 'cds_abcd12340000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('b', 64)),
  '23505', 'duplicate key value violates unique constraint "api_keys_prefix_key"',
  'a prefix already in use is refused by its unique constraint (the edge generates a new one)');
select tests.clear_authentication();
select is((select count(*) from platform.api_keys where user_id = :'alice'), 2::bigint, 'refused keys are not stored');

-- ---------------------------------------------------------------------------
-- At most 25 unrevoked keys per user.
insert into platform.api_keys (user_id, name, prefix, secret_hash)
select :'alice', 'bulk ' || i, 'cds_bulk' || lpad(i::text, 20, '0'), encode(extensions.digest('bulk ' || i, 'sha256'), 'hex')
  from generate_series(1, 23) i;
select tests.authenticate_as_service_role();
select set_config('tests.user', :'alice', true) \g /dev/null
select throws_ok(format($$select platform.create_api_key('one too many', 'cds_zzzz00260000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('c', 64)),
  'PT409', 'revoke a key first: at most 25 active keys', 'a 26th active key is refused with 409');
select is(tests.refusal_code(format($$select platform.create_api_key('one too many', 'cds_zzzz00260000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('c', 64))),
  'too_many_api_keys', 'the refusal carries the code too_many_api_keys');
select tests.authenticate_as(:'alice');
select platform.revoke_api_key((:'k1'::jsonb ->> 'id')::uuid) \g /dev/null
select tests.authenticate_as_service_role();
select lives_ok(format($$select platform.create_api_key('replacement', 'cds_zzzz00260000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('c', 64)),
  'revoked keys do not count towards the limit');
select tests.authenticate_as_service_role();
select set_config('tests.user', :'bob', true) \g /dev/null
select lives_ok(format($$select platform.create_api_key('bob', 'cds_bob000010000000000000000', %L, p_user_id => current_setting('tests.user')::uuid)$$, repeat('d', 64)),
  'the limit is per user');

-- ---------------------------------------------------------------------------
-- Who may call.
select tests.authenticate_as(:'alice');
select throws_ok(format($$select platform.create_api_key('k', 'cds_alic00010000000000000000', %L)$$, repeat('e', 64)),
  '42501', 'permission denied for function create_api_key',
  'a signed-in user may not store key material of their choosing through the REST layer');
select throws_ok(format($$select platform.create_api_key('k', 'cds_alic00010000000000000000', %L, p_user_id => %L)$$, repeat('e', 64), :'alice'),
  '42501', 'permission denied for function create_api_key', 'not even naming themselves');
select tests.authenticate_as_anon();
select throws_ok(format($$select platform.create_api_key('k', 'cds_anon00010000000000000000', %L)$$, repeat('e', 64)),
  '42501', 'permission denied for function create_api_key', 'anon may not create keys');
select tests.authenticate_as_service_role();
select throws_ok(format($$select platform.create_api_key('k', 'cds_srvc00010000000000000000', %L)$$, repeat('e', 64)),
  'PT422', 'p_user_id is required when acting as the service role', 'the service role must name the user');
select throws_ok(format($$select platform.create_api_key('k', 'cds_vera00010000000000000000', %L, p_user_id => %L)$$, repeat('e', 64), :'vera'),
  'PT403', 'viewers cannot spend tokens', 'a viewer may not have keys');
select throws_ok(format($$select platform.create_api_key('k', 'cds_ghst00010000000000000000', %L, p_user_id => %L)$$, repeat('e', 64),
    '40000000-0000-4000-8000-0000000000ee'),
  'PT404', 'the user is not registered on the platform', 'a user not on the platform is refused');
select tests.clear_authentication();
select is((select count(*) from platform.api_keys where prefix in ('cds_alic00010000000000000000', 'cds_anon00010000000000000000', 'cds_srvc00010000000000000000', 'cds_vera00010000000000000000', 'cds_ghst00010000000000000000')),
  0::bigint, 'no refused caller stored a key');

select * from finish();
rollback;
