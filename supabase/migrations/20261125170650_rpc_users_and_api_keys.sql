-- Users and their API keys: mirror_auth_user (the signup webhook),
-- set_default_model, create_api_key, revoke_api_key, resolve_api_key.

-- POST /rpc/mirror_auth_user (service role): the idempotent upsert of a
-- Supabase Auth user into platform.users, called by the edge's database
-- webhook. A retried or duplicated delivery changes nothing and succeeds.
-- (The guide's alternative, an `on auth.users` trigger `handle_new_user`, is
-- deliberately not installed: one path, at the edge, not both.)
create or replace function platform.mirror_auth_user(
  p_id uuid,
  p_email text default null,
  p_username text default null,
  p_role text default 'developer'
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_base text;
  v_username text;
  v_user platform.users;
  v_created boolean := false;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role mirrors users');
  end if;
  if p_id is null then
    perform platform.fail('PT422', 'invalid_user_id', 'p_id is required');
  end if;
  if p_role is null or p_role not in ('developer', 'viewer') then
    perform platform.fail('PT422', 'invalid_role', 'a mirrored user is a developer or a viewer');
  end if;
  if p_email is not null and (p_email !~ '^[^@[:space:]]+@[^@[:space:]]+$' or length(p_email) > 320) then
    perform platform.fail('PT422', 'invalid_email', 'p_email is not an email address');
  end if;

  select * into v_user from platform.users u where u.id = p_id;
  if not found then
    -- A username from the one asked for, else the email's local part: lower
    -- case, safe characters, starting with a letter or digit.
    v_base := lower(coalesce(nullif(p_username, ''), split_part(p_email, '@', 1), ''));
    v_base := regexp_replace(v_base, '[^a-z0-9_.-]', '', 'g');
    v_base := left(regexp_replace(v_base, '^[^a-z0-9]+', ''), 48);
    if v_base = '' then
      v_base := 'user';
    end if;
    v_username := v_base;
    if exists (select 1 from platform.users u where lower(u.username::text) = v_username) then
      v_username := v_base || '-' || left(replace(p_id::text, '-', ''), 8);
    end if;
    begin
      insert into platform.users (id, username, email, role)
      values (p_id, v_username, p_email, p_role)
      on conflict (id) do nothing
      returning * into v_user;
    exception when foreign_key_violation then
      perform platform.fail('PT422', 'unknown_auth_user', 'no Supabase Auth user has this id');
    end;
    v_created := v_user.id is not null;
    if not v_created then
      select * into strict v_user from platform.users u where u.id = p_id;
    end if;
    insert into platform.token_balances (user_id) values (p_id) on conflict (user_id) do nothing;
  end if;

  return jsonb_build_object('id', v_user.id, 'username', v_user.username, 'email', v_user.email,
    'role', v_user.role, 'created', v_created);
end
$$;

-- POST /rpc/set_default_model: the caller's own default model.
create or replace function platform.set_default_model(p_model text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(null, false);
  v_model platform.models;
begin
  select * into v_model from platform.models m where m.name = p_model and m.is_active;
  if not found then
    perform platform.fail('PT422', 'unknown_model', format('unknown model %L', left(p_model, 128)));
  end if;
  update platform.users u set default_model_id = v_model.id where u.id = v_uid;
  return jsonb_build_object('user_id', v_uid, 'default_model', v_model.name);
end
$$;

-- The API key a service-role call names must belong to the user it acts for.
create or replace function platform.check_api_key_owner(p_api_key_id uuid, p_user_id uuid)
returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if p_api_key_id is null then
    return;
  end if;
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role names an API key');
  end if;
  if not exists (select 1 from platform.api_keys k where k.id = p_api_key_id and k.user_id = p_user_id) then
    perform platform.fail('PT422', 'unknown_api_key', 'no such API key for this user');
  end if;
end
$$;

-- At most this many unrevoked keys per user.
create or replace function platform.max_api_keys_per_user() returns integer
language sql immutable
set search_path = ''
as $$ select 25 $$;

-- POST /rpc/create_api_key: stores a key the edge generated. The edge sends
-- only the visible prefix and the SHA-256 of the secret; the secret itself is
-- shown to the user once and never stored.
create or replace function platform.create_api_key(
  p_name text,
  p_prefix text,
  p_secret_hash text,
  p_scopes text[] default array['usage:write'],
  p_expires_at timestamptz default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(null, true);
  v_key platform.api_keys;
begin
  if p_name is null or length(trim(p_name)) not between 1 and 100 then
    perform platform.fail('PT422', 'invalid_name', 'name must be 1 to 100 characters');
  end if;
  if p_prefix is null or p_prefix !~ '^cds_[0-9a-z]{8}$' or p_secret_hash is null or p_secret_hash !~ '^[0-9a-f]{64}$' then
    perform platform.fail('PT422', 'invalid_api_key_material', 'prefix or secret hash is malformed');
  end if;
  if p_scopes is null or cardinality(p_scopes) = 0 or not (p_scopes <@ array['usage:write', 'usage:read']) then
    perform platform.fail('PT422', 'invalid_scopes', 'scopes are usage:write and/or usage:read');
  end if;
  if p_expires_at is not null and p_expires_at <= now() then
    perform platform.fail('PT422', 'invalid_expiry', 'expires_at must be in the future');
  end if;
  -- Serialize key creation per user so the limit holds under concurrency.
  perform platform.lock_balance(v_uid);
  if (select count(*) from platform.api_keys k where k.user_id = v_uid and k.revoked_at is null)
     >= platform.max_api_keys_per_user() then
    perform platform.fail('PT409', 'too_many_api_keys',
      format('revoke a key first: at most %s active keys', platform.max_api_keys_per_user()));
  end if;
  insert into platform.api_keys (user_id, name, prefix, secret_hash, scopes, expires_at)
  values (v_uid, trim(p_name), p_prefix, p_secret_hash, p_scopes, p_expires_at)
  returning * into v_key;
  return jsonb_build_object('id', v_key.id, 'name', v_key.name, 'prefix', v_key.prefix,
    'scopes', to_jsonb(v_key.scopes), 'created_at', v_key.created_at, 'expires_at', v_key.expires_at);
end
$$;

-- POST /rpc/revoke_api_key: by its owner or an admin; revoking twice answers
-- the first revocation.
create or replace function platform.revoke_api_key(p_key_id uuid)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(null, false);
  v_key platform.api_keys;
begin
  select * into v_key from platform.api_keys k
   where k.id = p_key_id and (k.user_id = v_uid or platform.is_admin())
   for update;
  if not found then
    perform platform.fail('PT404', 'unknown_api_key', 'no such API key');
  end if;
  if v_key.revoked_at is null then
    update platform.api_keys k set revoked_at = now() where k.id = p_key_id returning * into v_key;
  end if;
  return jsonb_build_object('id', v_key.id, 'prefix', v_key.prefix, 'revoked_at', v_key.revoked_at);
end
$$;

-- POST /rpc/resolve_api_key (service role): who a presented key belongs to.
-- The edge hashes the presented secret; the lookup is by hash, so the time it
-- takes says nothing about the secret. Refusals say no more than needed.
create or replace function platform.resolve_api_key(p_prefix text, p_secret_hash text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_key platform.api_keys;
  v_role text;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role resolves API keys');
  end if;
  select * into v_key from platform.api_keys k where k.secret_hash = p_secret_hash;
  if not found or v_key.prefix is distinct from p_prefix then
    perform platform.fail('PT401', 'invalid_api_key', 'invalid API key');
  end if;
  if v_key.revoked_at is not null then
    perform platform.fail('PT401', 'api_key_revoked', 'this API key has been revoked');
  end if;
  if v_key.expires_at is not null and v_key.expires_at <= now() then
    perform platform.fail('PT401', 'api_key_expired', 'this API key has expired');
  end if;
  select u.role into v_role from platform.users u where u.id = v_key.user_id;
  -- Record use at most once a minute: a busy key must not turn into a hot row.
  if v_key.last_used_at is null or v_key.last_used_at < now() - interval '1 minute' then
    update platform.api_keys k set last_used_at = now() where k.id = v_key.id;
  end if;
  return jsonb_build_object('key_id', v_key.id, 'user_id', v_key.user_id,
    'scopes', to_jsonb(v_key.scopes), 'role', v_role);
end
$$;
