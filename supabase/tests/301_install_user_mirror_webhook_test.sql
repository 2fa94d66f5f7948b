-- platform.install_user_mirror_webhook: installs the auth.users webhook's
-- trigger only when pg_net and Vault (with both secrets) exist, and otherwise
-- says exactly what is missing and installs nothing. Then, with stand-ins for
-- pg_net and Vault made in this transaction, what the trigger sends.
-- The stand-in part runs only where neither exists (the local stack); on a
-- Supabase project with pg_net it is skipped.
begin;
select plan(17);
set local client_min_messages = error;

select (to_regnamespace('net') is null and to_regnamespace('vault') is null) as plain \gset

-- Only postgres (the migrations' owner) installs ---------------------------
select tests.create_user('installer@example.test') as alice \gset
select tests.authenticate_as_service_role();
select throws_ok($$ select platform.install_user_mirror_webhook() $$,
  '42501', 'permission denied for function install_user_mirror_webhook', 'the service role may not install it');
select tests.authenticate_as_anon();
select throws_ok($$ select platform.install_user_mirror_webhook() $$,
  '42501', 'permission denied for function install_user_mirror_webhook', 'anon may not install it');
select tests.authenticate_as(:'alice');
select throws_ok($$ select platform.install_user_mirror_webhook() $$,
  '42501', 'permission denied for function install_user_mirror_webhook', 'a signed-in user may not install it');
select throws_ok($$ select platform.notify_edge_of_new_user() $$,
  '42501', 'permission denied for function notify_edge_of_new_user', 'nor call the trigger function');
select tests.clear_authentication();

\if :plain
-- Without pg_net and Vault ---------------------------------------------------
select is(platform.install_user_mirror_webhook(),
  '{"installed": false, "missing": ["pg_net", "vault", "vault_secret:edge_db_user_insert_url",
                                    "vault_secret:edge_db_webhook_secret"]}'::jsonb,
  'without pg_net and Vault, the installer names all four missing pieces and reports nothing installed');
select hasnt_trigger('auth', 'users', 'on_auth_user_created_notify_edge', 'and installs no trigger');

-- Stand-ins: pg_net's http_post (recording what it is asked to send) and
-- Vault's two relations, with the signatures the real ones have.
create schema net;
create table net.sent (url text, body jsonb, headers jsonb, timeout_milliseconds integer);
create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
                              headers jsonb default '{"Content-Type": "application/json"}',
                              timeout_milliseconds integer default 5000)
returns bigint language sql as $$
  insert into net.sent values (url, body, headers, timeout_milliseconds) returning 1::bigint
$$;
select is(platform.install_user_mirror_webhook(),
  '{"installed": false, "missing": ["vault", "vault_secret:edge_db_user_insert_url",
                                    "vault_secret:edge_db_webhook_secret"]}'::jsonb,
  'with pg_net alone, Vault and its secrets are still missing');

create schema vault;
create table vault.secrets (id uuid primary key default gen_random_uuid(), name text unique, secret text);
create view vault.decrypted_secrets as select s.id, s.name, s.secret as decrypted_secret from vault.secrets s;
insert into vault.secrets (name, secret) values ('edge_db_user_insert_url', 'https://edge.example.test/auth/hooks/db-user-insert');
select is(platform.install_user_mirror_webhook(),
  '{"installed": false, "missing": ["vault_secret:edge_db_webhook_secret"]}'::jsonb,
  'with one secret, the other is named');
select hasnt_trigger('auth', 'users', 'on_auth_user_created_notify_edge', 'still no trigger');

-- Everything there ----------------------------------------------------------
insert into vault.secrets (name, secret) values ('edge_db_webhook_secret', 'the-shared-webhook-secret');
select is(platform.install_user_mirror_webhook(), '{"installed": true, "missing": []}'::jsonb,
  'with pg_net, Vault and both secrets, the trigger is installed');
select is(platform.install_user_mirror_webhook(), '{"installed": true, "missing": []}'::jsonb,
  'installing again is fine');
select is((select count(*)::int from pg_trigger where tgrelid = 'auth.users'::regclass
            and tgname = 'on_auth_user_created_notify_edge'), 1, 'and leaves one trigger');

insert into auth.users (id, aud, role, email, encrypted_password, recovery_token, raw_user_meta_data)
values ('30100000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'grace@example.test',
        '$2a$10$hashhashhashhashhashhu', 'recovery-secret', '{"username": "grace", "bio": "private"}');
select results_eq(
  $$ select url, body, headers, timeout_milliseconds from net.sent $$,
  $$ values ('https://edge.example.test/auth/hooks/db-user-insert'::text,
             '{"type": "INSERT", "table": "users", "schema": "auth", "old_record": null,
               "record": {"id": "30100000-0000-4000-8000-000000000001", "email": "grace@example.test",
                          "raw_user_meta_data": {"username": "grace"}}}'::jsonb,
             '{"Content-Type": "application/json", "x-webhook-secret": "the-shared-webhook-secret"}'::jsonb,
             5000) $$,
  'a sign-up sends the trimmed body to the Vault URL with the secret header');
select unalike((select body::text from net.sent), '%(hash|recovery|private)%',
  'the password hash, tokens and other metadata are not sent');

-- A sign-up never fails over the webhook.
delete from net.sent where true;
delete from vault.secrets where name = 'edge_db_webhook_secret';
select lives_ok($$ insert into auth.users (id, email) values ('30100000-0000-4000-8000-000000000002', 'b@example.test') $$,
  'with a Vault secret gone, the sign-up still succeeds');
select is((select count(*)::int from net.sent), 0, 'and nothing is sent');
insert into vault.secrets (name, secret) values ('edge_db_webhook_secret', 'the-shared-webhook-secret');
create or replace function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
                                         headers jsonb default '{"Content-Type": "application/json"}',
                                         timeout_milliseconds integer default 5000)
returns bigint language plpgsql as $$ begin raise exception 'pg_net is broken'; end $$;
select lives_ok($$ insert into auth.users (id, email) values ('30100000-0000-4000-8000-000000000003', 'c@example.test') $$,
  'with pg_net failing, the sign-up still succeeds');
\else
select skip('pg_net or Vault exists here: the missing-pieces and stand-in checks need a database without them', 13);
\endif

select * from finish();
rollback;
