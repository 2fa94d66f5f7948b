-- platform.revoke_api_key: by the key's owner or an admin; revoking twice
-- answers the first revocation.
begin;
select plan(17);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
insert into platform.api_keys (id, user_id, name, prefix, secret_hash) values
  ('30000000-0000-4000-8000-00000000a001', :'alice', 'alice one', 'cds_alice0010000000000000000', repeat('1', 64)),
  ('30000000-0000-4000-8000-00000000a002', :'alice', 'alice two', 'cds_alice0020000000000000000', repeat('2', 64)),
  ('30000000-0000-4000-8000-00000000f001', :'vera', 'from when vera was a developer', 'cds_vera00010000000000000000', repeat('3', 64));

select tests.authenticate_as(:'alice');
select is(platform.revoke_api_key('30000000-0000-4000-8000-00000000a001'),
  jsonb_build_object('id', '30000000-0000-4000-8000-00000000a001', 'prefix', 'cds_alice0010000000000000000', 'revoked_at', now()),
  'the owner revokes a key; the answer names it and when it was revoked');
select tests.clear_authentication();
select is((select revoked_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a001'), now(),
  'the key is marked revoked');
select is((select revoked_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a002'), null::timestamptz,
  'the owner''s other keys stay active');

-- Revoking again answers the first revocation (made an hour "ago").
update platform.api_keys set revoked_at = now() - interval '1 hour' where id = '30000000-0000-4000-8000-00000000a001';
select tests.authenticate_as(:'alice');
select is(platform.revoke_api_key('30000000-0000-4000-8000-00000000a001') -> 'revoked_at', to_jsonb(now() - interval '1 hour'),
  'revoking twice answers the first revocation time');
select tests.clear_authentication();
select is((select revoked_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a001'), now() - interval '1 hour',
  'revoking twice does not move the revocation time');

-- Other users' keys.
select tests.authenticate_as(:'bob');
select throws_ok($$select platform.revoke_api_key('30000000-0000-4000-8000-00000000a002')$$,
  'PT404', 'no such API key', 'another user''s key is unknown to the caller');
select is(tests.refusal_code($$select platform.revoke_api_key('30000000-0000-4000-8000-00000000a002')$$),
  'unknown_api_key', 'the refusal carries the code unknown_api_key');
select throws_ok($$select platform.revoke_api_key('30000000-0000-4000-8000-0000000000ff')$$,
  'PT404', 'no such API key', 'an unknown key is refused with 404');
select throws_ok($$select platform.revoke_api_key(null)$$,
  'PT404', 'no such API key', 'a missing key id is refused with 404');
select tests.clear_authentication();
select is((select revoked_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a002'), null::timestamptz,
  'a refused revocation leaves the key active');

select tests.authenticate_as(:'adam');
select is(platform.revoke_api_key('30000000-0000-4000-8000-00000000a002') -> 'revoked_at', to_jsonb(now()),
  'an admin revokes another user''s key');

-- A viewer may revoke their own key (revoking spends nothing).
select tests.authenticate_as(:'vera');
select is(platform.revoke_api_key('30000000-0000-4000-8000-00000000f001') -> 'prefix', '"cds_vera00010000000000000000"'::jsonb,
  'a viewer may revoke their own key');

select tests.authenticate_as_anon();
select throws_ok($$select platform.revoke_api_key('30000000-0000-4000-8000-00000000a002')$$,
  '42501', 'permission denied for function revoke_api_key', 'anon may not revoke keys');
select tests.authenticate_as_service_role();
select throws_ok($$select platform.revoke_api_key('30000000-0000-4000-8000-00000000a002')$$,
  '42501', 'permission denied for function revoke_api_key', 'the service role may not revoke keys');
select tests.authenticate_as('40000000-0000-4000-8000-0000000000ee');
select throws_ok($$select platform.revoke_api_key('30000000-0000-4000-8000-00000000a002')$$,
  'PT404', 'the user is not registered on the platform', 'a signed-in user not on the platform is refused');
select tests.clear_authentication();
select throws_ok($$select platform.revoke_api_key('30000000-0000-4000-8000-00000000a002')$$,
  'PT401', 'sign in to call this function', 'a call without claims is refused as unauthenticated');

select tests.authenticate_as_service_role();
select throws_ok($$select platform.resolve_api_key('cds_alice0020000000000000000', repeat('2', 64))$$,
  'PT401', 'this API key has been revoked', 'a revoked key no longer resolves');

select * from finish();
rollback;
