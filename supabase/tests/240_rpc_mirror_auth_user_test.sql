-- platform.mirror_auth_user: the signup webhook's idempotent upsert of a
-- Supabase Auth user into platform.users (service role only). A retried or
-- duplicated delivery changes nothing and succeeds.
begin;
select plan(30);

-- Users as Supabase Auth leaves them: in auth.users only.
insert into auth.users (id, aud, role, email) values
  ('60000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'Jane.Doe+tag@Example.test'),
  ('60000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'jane@other.test'),
  ('60000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'jane2@other.test'),
  ('60000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', null),
  ('60000000-0000-4000-8000-000000000005', 'authenticated', 'authenticated', '__x@example.test'),
  ('60000000-0000-4000-8000-000000000006', 'authenticated', 'authenticated', 'viewer@example.test'),
  ('60000000-0000-4000-8000-000000000007', 'authenticated', 'authenticated', 'long@example.test');
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.create_user('alice@example.test') as alice \gset

-- ---------------------------------------------------------------------------
select tests.authenticate_as_service_role();
select platform.mirror_auth_user('60000000-0000-4000-8000-000000000001', 'Jane.Doe+tag@Example.test') as first \gset
select is(:'first'::jsonb,
  '{"id": "60000000-0000-4000-8000-000000000001", "username": "jane.doetag", "email": "Jane.Doe+tag@Example.test",
    "role": "developer", "created": true}'::jsonb,
  'a new user is mirrored as a developer, with a username from the email''s local part');
select tests.clear_authentication();
select results_eq(
  $$select username::text, email::text, role, default_model_id from platform.users where id = '60000000-0000-4000-8000-000000000001'$$,
  $$values ('jane.doetag'::text, 'Jane.Doe+tag@Example.test'::text, 'developer'::text, null::bigint)$$,
  'the platform user is written');
select results_eq(
  $$select granted, used, reserved, balance from platform.token_balances where user_id = '60000000-0000-4000-8000-000000000001'$$,
  $$values (0::bigint, 0::bigint, 0::bigint, 0::bigint)$$,
  'the new user starts with an empty balance');

-- Idempotency.
select tests.authenticate_as_service_role();
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000001', 'Jane.Doe+tag@Example.test'),
  :'first'::jsonb || '{"created": false}', 'a retried delivery answers the same user, not created');
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000001', 'changed@example.test', 'someone', 'viewer'),
  :'first'::jsonb || '{"created": false}', 'a delivery for an existing user with other data changes nothing');
select tests.clear_authentication();
select results_eq(
  $$select count(*), min(username::text), min(role) from platform.users where id = '60000000-0000-4000-8000-000000000001'$$,
  $$values (1::bigint, 'jane.doetag'::text, 'developer'::text)$$, 'the user is mirrored once');
select is((select count(*) from platform.token_balances where user_id = '60000000-0000-4000-8000-000000000001'), 1::bigint,
  'the balance row is created once');

-- Usernames.
select tests.authenticate_as_service_role();
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000002', 'jane@other.test', 'Jane') ->> 'username',
  'jane', 'a requested username is used, in lower case');
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000003', 'jane2@other.test', 'JANE') ->> 'username',
  'jane-60000000', 'a taken username gets a suffix from the user id');
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000004') ->> 'username',
  'user', 'a user without email or username is called user');
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000005', '__x@example.test') ->> 'username',
  'x', 'a username starts with a letter or digit');
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000007', 'long@example.test', repeat('a', 70)) ->> 'username',
  repeat('a', 48), 'a long username is cut to 48 characters');
select is(platform.mirror_auth_user('60000000-0000-4000-8000-000000000006', 'viewer@example.test', p_role => 'viewer') ->> 'role',
  'viewer', 'a user may be mirrored as a viewer');

-- ---------------------------------------------------------------------------
-- Invalid input.
select throws_ok($$select platform.mirror_auth_user(null, 'a@example.test')$$,
  'PT422', 'p_id is required', 'a delivery without a user id is refused');
select is(tests.refusal_code($$select platform.mirror_auth_user(null, 'a@example.test')$$), 'invalid_user_id',
  'a missing id carries the code invalid_user_id');
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test', p_role => 'admin')$$,
  'PT422', 'a mirrored user is a developer or a viewer', 'signup never makes an admin');
select is(tests.refusal_code($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test', p_role => 'admin')$$),
  'invalid_role', 'a bad role carries the code invalid_role');
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test', p_role => null)$$,
  'PT422', 'a mirrored user is a developer or a viewer', 'a null role is refused');
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'not-an-email')$$,
  'PT422', 'p_email is not an email address', 'a malformed email is refused');
select is(tests.refusal_code($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'not-an-email')$$),
  'invalid_email', 'a malformed email carries the code invalid_email');
select throws_ok(format($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', %L)$$, repeat('a', 310) || '@example.test'),
  'PT422', 'p_email is not an email address', 'an email over 320 characters is refused');
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'ghost@example.test')$$,
  'PT422', 'no Supabase Auth user has this id', 'a user unknown to Supabase Auth is refused');
select is(tests.refusal_code($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'ghost@example.test')$$),
  'unknown_auth_user', 'an unknown auth user carries the code unknown_auth_user');
select tests.clear_authentication();
select is((select count(*) from platform.users where id = '60000000-0000-4000-8000-0000000000aa'), 0::bigint,
  'refused deliveries write no user');
select is((select count(*) from platform.token_balances where user_id = '60000000-0000-4000-8000-0000000000aa'), 0::bigint,
  'refused deliveries write no balance');

-- ---------------------------------------------------------------------------
-- Only the service role mirrors.
select tests.authenticate_as_anon();
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test')$$,
  '42501', 'permission denied for function mirror_auth_user', 'anon may not mirror users');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test')$$,
  '42501', 'permission denied for function mirror_auth_user', 'a signed-in user may not mirror users');
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test')$$,
  '42501', 'permission denied for function mirror_auth_user', 'an admin may not mirror users');
select tests.clear_authentication();
select throws_ok($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test')$$,
  'PT403', 'only the service role mirrors users', 'a caller without service-role claims is refused');
select is(tests.refusal_code($$select platform.mirror_auth_user('60000000-0000-4000-8000-0000000000aa', 'a@example.test')$$),
  'forbidden', 'the refusal carries the code forbidden');

select * from finish();
rollback;
