-- platform.user_mirror_webhook_body: what the auth.users webhook sends the
-- edge. Supabase's Database Webhook shape, with only the fields the edge
-- reads; no secret column of auth.users can reach it.
begin;
select plan(6);

-- A sign-up as Supabase Auth writes it, secrets and all.
insert into auth.users (id, aud, role, email, encrypted_password, confirmation_token, recovery_token,
                        raw_app_meta_data, raw_user_meta_data, phone, is_super_admin, created_at, updated_at)
values ('30000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'Ada@Example.test',
        '$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234', 'confirm-token-secret', 'recovery-token-secret',
        '{"provider": "email", "providers": ["email"]}',
        '{"username": "Ada L", "full_name": "Ada Lovelace", "avatar_url": "https://example.test/a.png"}',
        '+15550100', false, now(), now());

select is(
  (select platform.user_mirror_webhook_body(to_jsonb(u)) from auth.users u
    where u.id = '30000000-0000-4000-8000-000000000001'),
  '{"type": "INSERT", "table": "users", "schema": "auth", "old_record": null,
    "record": {"id": "30000000-0000-4000-8000-000000000001", "email": "Ada@Example.test",
               "raw_user_meta_data": {"username": "Ada L"}}}'::jsonb,
  'the body is the Database Webhook shape with id, email and the chosen username only');

select is(
  (select array_agg(k order by k) from auth.users u,
          jsonb_object_keys(platform.user_mirror_webhook_body(to_jsonb(u)) -> 'record') k
    where u.id = '30000000-0000-4000-8000-000000000001'),
  array['email', 'id', 'raw_user_meta_data'],
  'the record has exactly the three fields the edge reads');

select unalike(
  (select platform.user_mirror_webhook_body(to_jsonb(u))::text from auth.users u
    where u.id = '30000000-0000-4000-8000-000000000001'),
  '%(secret|encrypted_password|\$2a\$|token|Lovelace|phone|555)%',
  'no password hash, token, other metadata or phone number appears anywhere in the body');

-- Whatever the row holds, only the named fields are copied.
select is(
  platform.user_mirror_webhook_body(
    '{"id": "30000000-0000-4000-8000-000000000002", "email": null, "encrypted_password": "x",
      "raw_user_meta_data": {"username": {"nested": "object"}}}'::jsonb),
  '{"type": "INSERT", "table": "users", "schema": "auth", "old_record": null,
    "record": {"id": "30000000-0000-4000-8000-000000000002", "email": null, "raw_user_meta_data": {}}}'::jsonb,
  'a username that is not a string is left out, and so is every unnamed field');
select is(
  platform.user_mirror_webhook_body('{"id": "30000000-0000-4000-8000-000000000003"}'::jsonb) -> 'record',
  '{"id": "30000000-0000-4000-8000-000000000003", "email": null, "raw_user_meta_data": {}}'::jsonb,
  'a row without email or metadata gives nulls, not an error');

-- Only the owner (postgres) calls it: it is part of the trigger.
select tests.authenticate_as_service_role();
select throws_ok($$ select platform.user_mirror_webhook_body('{}') $$,
  '42501', 'permission denied for function user_mirror_webhook_body', 'the service role may not call it');
select tests.clear_authentication();

select * from finish();
rollback;
