-- platform.api_keys: a user reads their own keys and an admin reads every key,
-- both without the secret_hash column (a column privilege); keys change only
-- through the RPCs (create_api_key, revoke_api_key), so nobody but the service
-- role writes the table directly.
begin;
select plan(36);

-- Fixtures, as the superuser: one key each for the owner and the stranger.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('stranger@example.com') as stranger \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
insert into platform.api_keys (user_id, name, prefix, secret_hash)
values (:'owner', 'owner key', 'cds_owner0010000000000000000', encode(extensions.digest('owner secret', 'sha256'), 'hex'))
returning id as owner_key \gset
insert into platform.api_keys (user_id, name, prefix, secret_hash)
values (:'stranger', 'stranger key', 'cds_strngr010000000000000000', encode(extensions.digest('stranger secret', 'sha256'), 'hex'))
returning id as stranger_key \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select throws_ok($$ select count(*) from platform.api_keys $$,
  '42501', 'permission denied for table api_keys', 'anon cannot read API keys');
select throws_ok(
  format($$ insert into platform.api_keys (user_id, name, prefix, secret_hash)
            values (%L, 'anon key', 'cds_anon00010000000000000000', repeat('a', 64)) $$, :'owner'),
  '42501', 'permission denied for table api_keys', 'anon cannot insert API keys');
select throws_ok($$ update platform.api_keys set revoked_at = null $$,
  '42501', 'permission denied for table api_keys', 'anon cannot update API keys');
select throws_ok($$ delete from platform.api_keys $$,
  '42501', 'permission denied for table api_keys', 'anon cannot delete API keys');

-- the owner --------------------------------------------------------------------
select tests.authenticate_as(:'owner');

select results_eq($$ select id, name, prefix from platform.api_keys $$,
  format($$ values (%L::uuid, 'owner key', 'cds_owner0010000000000000000') $$, :'owner_key'),
  'a user reads their own keys, without the hash');
select throws_ok($$ select secret_hash from platform.api_keys $$,
  '42501', 'permission denied for table api_keys', 'a user cannot read the hash of their own key');
select throws_ok($$ select * from platform.api_keys $$,
  '42501', 'permission denied for table api_keys', 'select * is refused because it includes the hash');
select throws_ok(
  format($$ select count(*) from platform.api_keys where secret_hash = %L $$,
         encode(extensions.digest('owner secret', 'sha256'), 'hex')),
  '42501', 'permission denied for table api_keys', 'a user cannot probe hashes in a where clause');
select throws_ok(
  format($$ insert into platform.api_keys (user_id, name, prefix, secret_hash)
            values (%L, 'my own key', 'cds_mykey0010000000000000000', repeat('b', 64)) $$, :'owner'),
  '42501', 'permission denied for table api_keys', 'a user cannot insert keys directly, even their own');
select throws_ok(format('update platform.api_keys set expires_at = null, revoked_at = null where id = %L', :'owner_key'),
  '42501', 'permission denied for table api_keys', 'a user cannot update their own key directly');
select throws_ok(format('delete from platform.api_keys where id = %L', :'owner_key'),
  '42501', 'permission denied for table api_keys', 'a user cannot delete their own key directly');

-- a stranger ---------------------------------------------------------------------
select tests.authenticate_as(:'stranger');

select is((select count(*) from platform.api_keys where id = :'owner_key'), 0::bigint,
  'a stranger does not see someone else''s key');
select results_eq($$ select id from platform.api_keys $$, format('values (%L::uuid)', :'stranger_key'),
  'a stranger sees only their own key');
select throws_ok(
  format($$ insert into platform.api_keys (user_id, name, prefix, secret_hash)
            values (%L, 'planted key', 'cds_plant0010000000000000000', repeat('c', 64)) $$, :'owner'),
  '42501', 'permission denied for table api_keys', 'a stranger cannot plant a key on someone else');
select throws_ok(format('update platform.api_keys set revoked_at = now() where id = %L', :'owner_key'),
  '42501', 'permission denied for table api_keys', 'a stranger cannot update someone else''s key');
select throws_ok(format('delete from platform.api_keys where id = %L', :'owner_key'),
  '42501', 'permission denied for table api_keys', 'a stranger cannot delete someone else''s key');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.api_keys where id in (:'owner_key', :'stranger_key')), 2::bigint,
  'an admin reads every key');
select throws_ok($$ select secret_hash from platform.api_keys $$,
  '42501', 'permission denied for table api_keys', 'an admin cannot read hashes either');
select throws_ok(
  format($$ insert into platform.api_keys (user_id, name, prefix, secret_hash)
            values (%L, 'admin key', 'cds_admin0010000000000000000', repeat('d', 64)) $$, :'owner'),
  '42501', 'permission denied for table api_keys', 'an admin cannot insert keys directly');
select throws_ok(format('update platform.api_keys set revoked_at = now() where id = %L', :'owner_key'),
  '42501', 'permission denied for table api_keys', 'an admin cannot update keys directly (revoke_api_key does)');
select throws_ok(format('delete from platform.api_keys where id = %L', :'owner_key'),
  '42501', 'permission denied for table api_keys', 'an admin cannot delete keys directly');

-- None of that changed anything.
select tests.clear_authentication();
-- Counted for this test's users: the stack's demo user has a key of its own.
select is((select count(*) from platform.api_keys where user_id in (:'owner', :'stranger', :'admin')),
  2::bigint, 'no key was added or removed');
select is((select revoked_at from platform.api_keys where id = :'owner_key'), null,
  'the owner''s key is still unrevoked');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.api_keys where user_id in (:'owner', :'stranger', :'admin')),
  2::bigint, 'the service role reads every key');
select is((select count(*) from platform.api_keys), (select count(*) from platform.api_keys k
  where exists (select 1 from platform.users u where u.id = k.user_id)),
  'the service role sees keys of every user, not only its own');
select is((select secret_hash from platform.api_keys where id = :'owner_key'),
  encode(extensions.digest('owner secret', 'sha256'), 'hex'), 'the service role reads hashes');
select lives_ok(
  format($$ insert into platform.api_keys (user_id, name, prefix, secret_hash)
            values (%L, 'service key', 'cds_servc0010000000000000000', repeat('e', 64)) $$, :'owner'),
  'the service role inserts keys');
select lives_ok(format('update platform.api_keys set last_used_at = now() where id = %L', :'owner_key'),
  'the service role updates keys');
select lives_ok(format('delete from platform.api_keys where id = %L', :'stranger_key'),
  'the service role deletes keys');

select tests.clear_authentication();
select is((select count(*) from platform.api_keys where prefix = 'cds_servc0010000000000000000'), 1::bigint,
  'the service role''s insert took effect');
select isnt((select last_used_at from platform.api_keys where id = :'owner_key'), null,
  'the service role''s update took effect');
select is((select count(*) from platform.api_keys where id = :'stranger_key'), 0::bigint,
  'the service role''s delete took effect');

-- The RPCs are the owner's way to change keys; they write through the
-- function's owner, and the column privilege still hides the hash afterwards.
select tests.authenticate_as(:'owner');
select lives_ok(format('select platform.revoke_api_key(%L)', :'owner_key'),
  'the owner revokes their key through revoke_api_key');
select isnt((select revoked_at from platform.api_keys where id = :'owner_key'), null,
  'the owner sees their key revoked');
select tests.authenticate_as(:'stranger');
select throws_ok(format('select platform.revoke_api_key(%L)', :'owner_key'),
  'PT404', 'no such API key', 'a stranger cannot revoke someone else''s key through the RPC');
select tests.clear_authentication();
select is((select count(*) from platform.api_keys where user_id = :'owner'), 2::bigint,
  'the owner has their two keys');

select * from finish();
rollback;
