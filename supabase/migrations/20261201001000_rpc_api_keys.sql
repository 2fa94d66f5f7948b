-- API keys: create_api_key (the edge, for a signed-in user), revoke_api_key,
-- list_api_keys (the owner's), and resolve_api_key (the edge, for a presented
-- key).

-- At most this many unrevoked keys per user.
create or replace function platform.max_api_keys_per_user() returns integer
language sql immutable
set search_path = ''
as $$ select 25 $$;
revoke execute on function platform.max_api_keys_per_user() from public, anon, authenticated, service_role;

-- At most this many keys per user, revoked ones included: a revoked key stays
-- (usage names it), so without this bound creating and revoking keys in turn
-- would grow the table without limit.
create or replace function platform.max_api_key_rows_per_user() returns integer
language sql immutable
set search_path = ''
as $$ select 100 $$;
revoke execute on function platform.max_api_key_rows_per_user() from public, anon, authenticated, service_role;

-- POST /rpc/create_api_key (service role): stores a key the edge generated
-- for the signed-in user it names (p_user_id). The edge sends only the
-- visible prefix and the SHA-256 of the secret; the secret itself is shown to
-- the user once and never reaches the database. Only the service role may
-- call it: a user calling it straight through the REST layer could choose
-- their own prefix and hash (a secret that is not random, or a hash nobody
-- holds the secret of), so the key material always comes from the edge.
create or replace function platform.create_api_key(
  p_name text,
  p_prefix text,
  p_secret_hash text,
  p_scopes text[] default array['usage:write'],
  p_expires_at timestamptz default null,
  p_user_id uuid default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid;
  v_key platform.api_keys;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'API keys are created through POST /v1/api-keys');
  end if;
  v_uid := platform.caller_user_id(p_user_id, true);
  if p_name is null or length(trim(p_name)) not between 1 and 100 then
    perform platform.fail('PT422', 'invalid_name', 'name must be 1 to 100 characters');
  end if;
  if p_prefix is null or p_prefix !~ '^cds_[0-9a-z]{24}$' or p_secret_hash is null or p_secret_hash !~ '^[0-9a-f]{64}$' then
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
  if (select count(*) from platform.api_keys k where k.user_id = v_uid)
     >= platform.max_api_key_rows_per_user() then
    perform platform.fail('PT409', 'too_many_api_keys',
      format('at most %s API keys per user, revoked ones included', platform.max_api_key_rows_per_user()));
  end if;
  insert into platform.api_keys (user_id, name, prefix, secret_hash, scopes, expires_at)
  values (v_uid, trim(p_name), p_prefix, p_secret_hash, p_scopes, p_expires_at)
  returning * into v_key;
  return jsonb_build_object('id', v_key.id, 'name', v_key.name, 'prefix', v_key.prefix,
    'scopes', to_jsonb(v_key.scopes), 'created_at', v_key.created_at, 'expires_at', v_key.expires_at);
end
$$;
revoke execute on function platform.create_api_key(text, text, text, text[], timestamptz, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.create_api_key(text, text, text, text[], timestamptz, uuid) to service_role;

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
revoke execute on function platform.revoke_api_key(uuid) from public, anon, authenticated, service_role;
grant execute on function platform.revoke_api_key(uuid) to authenticated;

-- POST /rpc/list_api_keys: the caller's keys, newest first, never the hash.
-- (GET /v1/api-keys at the edge; an RPC keeps the edge on one PostgREST path.)
create or replace function platform.list_api_keys()
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(null, false);
begin
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', k.id, 'name', k.name, 'prefix', k.prefix, 'scopes', to_jsonb(k.scopes),
             'created_at', k.created_at, 'last_used_at', k.last_used_at,
             'expires_at', k.expires_at, 'revoked_at', k.revoked_at)
           order by k.created_at desc, k.id)
      from platform.api_keys k
     where k.user_id = v_uid
  ), '[]');
end
$$;
revoke execute on function platform.list_api_keys() from public, anon, authenticated, service_role;
grant execute on function platform.list_api_keys() to authenticated;

-- POST /rpc/resolve_api_key (service role): who a presented key belongs to.
-- The edge hashes the presented secret. Every secret comparison is to be
-- constant-time, with no argument needed: the key is found by its prefix,
-- which is not secret (dashboards show it), not by an index lookup of the
-- hash (which compares byte by byte and stops at the first difference), and
-- the hashes are compared as HMACs under a key drawn for this call, so
-- whatever the comparison leaks through timing is about values nobody can
-- predict or choose. Refusals say no more than needed.
create or replace function platform.resolve_api_key(p_prefix text, p_secret_hash text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_key platform.api_keys;
  v_role text;
  v_blind bytea := extensions.gen_random_bytes(32);
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role resolves API keys');
  end if;
  select * into v_key from platform.api_keys k where k.prefix = p_prefix;
  if not found
     or extensions.hmac(convert_to(v_key.secret_hash, 'UTF8'), v_blind, 'sha256')
        is distinct from extensions.hmac(convert_to(coalesce(p_secret_hash, ''), 'UTF8'), v_blind, 'sha256') then
    perform platform.fail('PT401', 'invalid_api_key', 'invalid API key');
  end if;
  if v_key.revoked_at is not null then
    perform platform.fail('PT401', 'api_key_revoked', 'this API key has been revoked');
  end if;
  if v_key.expires_at is not null and v_key.expires_at <= now() then
    perform platform.fail('PT401', 'api_key_expired', 'this API key has expired');
  end if;
  -- A banned or deleted user's keys stop working with their tokens.
  perform platform.check_user_standing(v_key.user_id, false);
  select u.role into v_role from platform.users u where u.id = v_key.user_id;
  -- Record use at most once a minute: a busy key must not turn into a hot row.
  if v_key.last_used_at is null or v_key.last_used_at < now() - interval '1 minute' then
    update platform.api_keys k set last_used_at = now() where k.id = v_key.id;
  end if;
  return jsonb_build_object('key_id', v_key.id, 'user_id', v_key.user_id,
    'scopes', to_jsonb(v_key.scopes), 'role', v_role);
end
$$;
revoke execute on function platform.resolve_api_key(text, text) from public, anon, authenticated, service_role;
grant execute on function platform.resolve_api_key(text, text) to service_role;
