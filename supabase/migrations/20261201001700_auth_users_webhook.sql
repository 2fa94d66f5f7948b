-- On a Supabase project: after a user signs up, tell the edge, which mirrors
-- them into platform.users (POST /auth/hooks/db-user-insert, idempotent).
--
-- This is the Database Webhook Supabase's dashboard would create, written out
-- so the endpoint and its secret come from Supabase Vault instead of the
-- trigger's text (a dashboard webhook stores its headers in the trigger
-- definition). Set them once per project (see the README):
--   select vault.create_secret('https://<worker>/auth/hooks/db-user-insert', 'edge_db_user_insert_url');
--   select vault.create_secret('<DB_WEBHOOK_SECRET>', 'edge_db_webhook_secret');
--
-- Installed only where Supabase's webhook machinery exists (the
-- `supabase_functions` schema, pg_net's `net` and Vault); skipped on plain
-- PostgreSQL, where the local stack plays the webhook's part itself.
do $migration$
begin
  if to_regnamespace('supabase_functions') is null
     or to_regnamespace('net') is null
     or to_regnamespace('vault') is null
     or to_regclass('auth.users') is null then
    raise notice 'supabase_functions, pg_net or Vault is missing: the auth.users webhook is not installed';
    return;
  end if;

  create or replace function platform.notify_edge_of_new_user()
  returns trigger
  language plpgsql security definer
  set search_path = ''
  as $fn$
  declare
    v_url text;
    v_secret text;
  begin
    select s.decrypted_secret into v_url from vault.decrypted_secrets s where s.name = 'edge_db_user_insert_url';
    select s.decrypted_secret into v_secret from vault.decrypted_secrets s where s.name = 'edge_db_webhook_secret';
    if v_url is null or v_secret is null then
      -- Never block a signup over missing wiring; the warning shows in the logs.
      raise warning 'edge webhook not configured in Vault (edge_db_user_insert_url, edge_db_webhook_secret)';
      return new;
    end if;
    -- pg_net sends after commit and retries nothing; the edge's mirror is
    -- idempotent, so a manual re-delivery is always safe.
    perform net.http_post(
      url := v_url,
      body := jsonb_build_object('type', 'INSERT', 'table', tg_table_name, 'schema', tg_table_schema,
                                 'record', to_jsonb(new), 'old_record', null),
      headers := jsonb_build_object('Content-Type', 'application/json', 'x-webhook-secret', v_secret),
      timeout_milliseconds := 5000
    );
    return new;
  end
  $fn$;

  revoke execute on function platform.notify_edge_of_new_user() from public, anon, authenticated, service_role;

  create or replace trigger on_auth_user_created_notify_edge
    after insert on auth.users
    for each row execute function platform.notify_edge_of_new_user();
end
$migration$;
