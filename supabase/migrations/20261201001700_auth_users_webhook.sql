-- The auth.users Database Webhook: after a user signs up, tell the edge,
-- which mirrors them into platform.users (POST /auth/hooks/db-user-insert,
-- idempotent). It is the fast path: the edge also mirrors a signed-in user it
-- has not seen on their first request (just in time), so a missed delivery
-- delays nobody.
--
-- The trigger needs what a hosted project has only once someone enables it:
-- pg_net (`net.http_post`; Database Webhooks or Database -> Extensions) and
-- Vault holding the endpoint and its secret. A migration cannot wait for
-- them, and a migration that skips is recorded as applied and never runs
-- again. So this file only defines functions, the same on every database,
-- and the operator installs the trigger once the prerequisites exist (see the
-- README, "Deploying"):
--   select vault.create_secret('https://<worker>/auth/hooks/db-user-insert', 'edge_db_user_insert_url');
--   select vault.create_secret('<DB_WEBHOOK_SECRET>', 'edge_db_webhook_secret');
--   select platform.install_user_mirror_webhook();
-- The installer answers what is still missing instead of pretending;
-- platform.deployment_status() reports the same at any time.

-- The body sent for a new auth.users row: the shape of Supabase's Database
-- Webhooks (type, table, schema, record, old_record), with only the fields the
-- edge reads (shared::hooks::user_mirror::MirrorUser::from_webhook): `id`,
-- `email` and the username chosen at sign-up. Fields are copied by name, so
-- no other column (encrypted_password, confirmation and recovery tokens,
-- metadata, phone) ever leaves the database, whatever auth.users holds.
-- It takes the row as jsonb (`to_jsonb(new)`) rather than as `auth.users`,
-- so this file applies on a PostgreSQL without Supabase Auth too.
create or replace function platform.user_mirror_webhook_body(p_user jsonb)
returns jsonb
language sql immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'type', 'INSERT',
    'table', 'users',
    'schema', 'auth',
    'record', jsonb_build_object(
      'id', p_user -> 'id',
      'email', p_user -> 'email',
      'raw_user_meta_data', case
        when jsonb_typeof(p_user -> 'raw_user_meta_data' -> 'username') = 'string'
          then jsonb_build_object('username', p_user -> 'raw_user_meta_data' -> 'username')
        else '{}'::jsonb
      end),
    'old_record', null)
$$;
comment on function platform.user_mirror_webhook_body(jsonb) is
  'The auth.users webhook body for a row (to_jsonb): id, email and the chosen username only';

-- The trigger function. It names pg_net and Vault only in its body, which
-- PL/pgSQL resolves when it runs, so it can be defined where neither exists.
-- security definer: the role that inserts into auth.users (Supabase Auth's)
-- may not read Vault.
create or replace function platform.notify_edge_of_new_user()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_url text;
  v_secret text;
begin
  begin
    select s.decrypted_secret into v_url from vault.decrypted_secrets s where s.name = 'edge_db_user_insert_url';
    select s.decrypted_secret into v_secret from vault.decrypted_secrets s where s.name = 'edge_db_webhook_secret';
    if v_url is null or v_secret is null then
      raise warning 'edge webhook not configured in Vault; user % is mirrored on their first request', new.id;
      return new;
    end if;
    -- pg_net sends after commit and retries nothing; the edge's mirror is
    -- idempotent, so a manual re-delivery is always safe.
    perform net.http_post(
      url := v_url,
      body := platform.user_mirror_webhook_body(to_jsonb(new)),
      headers := jsonb_build_object('Content-Type', 'application/json', 'x-webhook-secret', v_secret),
      timeout_milliseconds := 5000
    );
  exception when others then
    -- Never fail a sign-up over the webhook (pg_net or Vault removed since the
    -- trigger was installed): the edge mirrors the user on first use.
    raise warning 'edge webhook for user % not sent: % (%)', new.id, sqlerrm, sqlstate;
  end;
  return new;
end
$$;

-- What the trigger still needs here, as stable names: `auth.users`, `pg_net`,
-- `vault`, `vault_secret:<name>`. Empty when it can be installed. Secret names
-- only: no value is read.
create or replace function platform.user_mirror_webhook_missing()
returns text[]
language plpgsql stable
set search_path = ''
as $$
declare
  v_missing text[] := '{}';
  v_name text;
begin
  if to_regclass('auth.users') is null then
    v_missing := v_missing || 'auth.users'::text;
  end if;
  if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null then
    v_missing := v_missing || 'pg_net'::text;
  end if;
  if to_regclass('vault.secrets') is null or to_regclass('vault.decrypted_secrets') is null then
    v_missing := v_missing || 'vault'::text;
  end if;
  foreach v_name in array array['edge_db_user_insert_url', 'edge_db_webhook_secret'] loop
    -- Two statements: a query naming vault.secrets cannot even be planned
    -- where Vault does not exist.
    if to_regclass('vault.secrets') is null then
      v_missing := v_missing || ('vault_secret:' || v_name);
    elsif not exists (select 1 from vault.secrets s where s.name = v_name) then
      v_missing := v_missing || ('vault_secret:' || v_name);
    end if;
  end loop;
  return v_missing;
end
$$;

-- Installs the webhook's trigger on auth.users when everything it needs
-- exists, and answers {"installed": true, "missing": []}. Otherwise installs
-- nothing and answers {"installed": false, "missing": [...]}, with a warning
-- naming them. Safe to call again: the trigger is replaced, not doubled.
create or replace function platform.install_user_mirror_webhook()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_missing text[] := platform.user_mirror_webhook_missing();
begin
  if cardinality(v_missing) > 0 then
    raise warning 'the auth.users webhook is not installed; missing: %', array_to_string(v_missing, ', ')
      using hint = 'enable pg_net (Database Webhooks), create the Vault secrets, then call this again';
    return jsonb_build_object('installed', false, 'missing', to_jsonb(v_missing));
  end if;
  create or replace trigger on_auth_user_created_notify_edge
    after insert on auth.users
    for each row execute function platform.notify_edge_of_new_user();
  return jsonb_build_object('installed', true, 'missing', '[]'::jsonb);
end
$$;

-- Only the owner (postgres, which applies the migrations) runs these: the
-- installer changes auth.users, and the rest are its parts.
revoke execute on function
  platform.user_mirror_webhook_body(jsonb),
  platform.notify_edge_of_new_user(),
  platform.user_mirror_webhook_missing(),
  platform.install_user_mirror_webhook()
  from public, anon, authenticated, service_role;
