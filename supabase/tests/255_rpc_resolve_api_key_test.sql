-- platform.resolve_api_key (service role): who a presented key belongs to,
-- looked up by the SHA-256 of its secret. Refusals say no more than needed.
begin;
select plan(23);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
insert into platform.api_keys (id, user_id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at) values
  ('30000000-0000-4000-8000-00000000a001', :'alice', 'active', 'cds_alice0010000000000000000', repeat('1', 64),
   array['usage:write', 'usage:read'], now(), now() + interval '1 day', null),
  ('30000000-0000-4000-8000-00000000a002', :'alice', 'revoked', 'cds_alice0020000000000000000', repeat('2', 64),
   array['usage:write'], now() - interval '2 days', null, now() - interval '1 day'),
  ('30000000-0000-4000-8000-00000000a003', :'alice', 'expired', 'cds_alice0030000000000000000', repeat('3', 64),
   array['usage:write'], now() - interval '2 days', now() - interval '1 second', null),
  ('30000000-0000-4000-8000-00000000a004', :'alice', 'expires now', 'cds_alice0040000000000000000', repeat('4', 64),
   array['usage:write'], now() - interval '2 days', now(), null),
  ('30000000-0000-4000-8000-00000000a005', :'alice', 'revoked and expired', 'cds_alice0050000000000000000', repeat('5', 64),
   array['usage:write'], now() - interval '2 days', now() - interval '1 day', now() - interval '1 day'),
  ('30000000-0000-4000-8000-00000000f001', :'vera', 'viewer key', 'cds_vera00010000000000000000', repeat('6', 64),
   array['usage:read'], now(), null, null);

-- ---------------------------------------------------------------------------
select tests.authenticate_as_service_role();
select is(platform.resolve_api_key('cds_alice0010000000000000000', repeat('1', 64)),
  jsonb_build_object('key_id', '30000000-0000-4000-8000-00000000a001', 'user_id', :'alice',
    'scopes', '["usage:write", "usage:read"]'::jsonb, 'role', 'developer'),
  'a valid key resolves to its id, its owner, its scopes and the owner''s role');
select is(platform.resolve_api_key('cds_vera00010000000000000000', repeat('6', 64)) -> 'role', '"viewer"'::jsonb,
  'the owner''s current role is answered (a viewer''s key says viewer)');
select tests.clear_authentication();
select is((select last_used_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a001'), now(),
  'resolving records when the key was last used');

-- last_used_at is written at most once a minute.
update platform.api_keys set last_used_at = now() - interval '30 seconds' where id = '30000000-0000-4000-8000-00000000a001';
select tests.authenticate_as_service_role();
select platform.resolve_api_key('cds_alice0010000000000000000', repeat('1', 64)) \g /dev/null
select tests.clear_authentication();
select is((select last_used_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a001'),
  now() - interval '30 seconds', 'a key used within the last minute is not written again');
update platform.api_keys set last_used_at = now() - interval '2 minutes' where id = '30000000-0000-4000-8000-00000000a001';
select tests.authenticate_as_service_role();
select platform.resolve_api_key('cds_alice0010000000000000000', repeat('1', 64)) \g /dev/null
select tests.clear_authentication();
select is((select last_used_at from platform.api_keys where id = '30000000-0000-4000-8000-00000000a001'), now(),
  'a key last used over a minute ago is stamped again');

-- ---------------------------------------------------------------------------
-- Keys that do not resolve.
select tests.authenticate_as_service_role();
select throws_ok(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('9', 64)),
  'PT401', 'invalid API key', 'a wrong secret is refused with 401');
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('9', 64))),
  'invalid_api_key', 'a wrong secret carries the code invalid_api_key');
select throws_ok(format($$select platform.resolve_api_key('cds_alice0020000000000000000', %L)$$, repeat('1', 64)),
  'PT401', 'invalid API key', 'a right secret under another key''s prefix is refused');
select throws_ok(format($$select platform.resolve_api_key(null, %L)$$, repeat('1', 64)),
  'PT401', 'invalid API key', 'a missing prefix is refused');
select throws_ok($$select platform.resolve_api_key(null, null)$$,
  'PT401', 'invalid API key', 'a missing key is refused');
select throws_ok(format($$select platform.resolve_api_key('cds_alice0020000000000000000', %L)$$, repeat('2', 64)),
  'PT401', 'this API key has been revoked', 'a revoked key is refused with 401');
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_alice0020000000000000000', %L)$$, repeat('2', 64))),
  'api_key_revoked', 'a revoked key carries the code api_key_revoked');
select throws_ok(format($$select platform.resolve_api_key('cds_alice0030000000000000000', %L)$$, repeat('3', 64)),
  'PT401', 'this API key has expired', 'an expired key is refused with 401');
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_alice0030000000000000000', %L)$$, repeat('3', 64))),
  'api_key_expired', 'an expired key carries the code api_key_expired');
select throws_ok(format($$select platform.resolve_api_key('cds_alice0040000000000000000', %L)$$, repeat('4', 64)),
  'PT401', 'this API key has expired', 'a key is expired from the instant of its expiry');
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_alice0050000000000000000', %L)$$, repeat('5', 64))),
  'api_key_revoked', 'a key both revoked and expired is reported revoked');
select tests.clear_authentication();
select is((select count(*) from platform.api_keys where last_used_at is not null and id <> '30000000-0000-4000-8000-00000000a001'
                                                    and id <> '30000000-0000-4000-8000-00000000f001'),
  0::bigint, 'keys that do not resolve are not stamped as used');

-- A deleted owner's keys go with them.
delete from auth.users where id = :'vera';
select tests.authenticate_as_service_role();
select throws_ok(format($$select platform.resolve_api_key('cds_vera00010000000000000000', %L)$$, repeat('6', 64)),
  'PT401', 'invalid API key', 'a deleted user''s key no longer resolves');

-- ---------------------------------------------------------------------------
-- Only the service role resolves keys.
select tests.authenticate_as_anon();
select throws_ok(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('1', 64)),
  '42501', 'permission denied for function resolve_api_key', 'anon may not resolve keys');
select tests.authenticate_as(:'alice');
select throws_ok(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('1', 64)),
  '42501', 'permission denied for function resolve_api_key', 'a signed-in user may not resolve keys, even their own');
select tests.authenticate_as(:'adam');
select throws_ok(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('1', 64)),
  '42501', 'permission denied for function resolve_api_key', 'an admin may not resolve keys');
select tests.clear_authentication();
select throws_ok(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('1', 64)),
  'PT403', 'only the service role resolves API keys', 'a caller without service-role claims is refused');
select is(tests.refusal_code(format($$select platform.resolve_api_key('cds_alice0010000000000000000', %L)$$, repeat('1', 64))),
  'forbidden', 'the refusal carries the code forbidden');

select * from finish();
rollback;
