-- Helpers shared by the RPCs: how they refuse a request, who the caller is,
-- and the balance lock. None is callable through the API.
--
-- Refusals follow one convention that the edge maps in one place
-- (shared::postgrest::map_error): SQLSTATE `PTxyz` makes PostgREST answer HTTP
-- xyz, `message` is safe to show, and `hint` carries the stable snake_case code.

create or replace function platform.fail(p_sqlstate text, p_code text, p_message text)
returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  raise exception using errcode = p_sqlstate, message = p_message, hint = p_code;
end
$$;
comment on function platform.fail(text, text, text) is
  'Raises a refusal: SQLSTATE PTxyz (HTTP xyz through PostgREST), a safe message, the stable code as hint';

-- Whether a text is a UUID PostgreSQL's `::uuid` accepts in canonical form,
-- so a malformed id in a queue message is answered, never cast: a cast error
-- would fail the whole delivered batch, which the queue would then retry
-- until it is dead-lettered, where the same cast would fail again.
create or replace function platform.is_uuid(p_value text)
returns boolean
language sql immutable
set search_path = ''
as $$
  select coalesce(p_value ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', false)
$$;

-- Refuses a user Supabase Auth no longer lets in: a ban (`banned_until` in
-- the future) or a soft delete (`deleted_at`) leaves the auth.users row in
-- place, and tokens issued before it, and the user's API keys, would
-- otherwise keep working until they expire. 403 `user_deleted` or
-- `user_banned`. With p_write, also refuses an anonymous sign-in (403
-- `anonymous_user_read_only`): anonymous users may read, never spend or hold
-- API keys, whether they call with their own token (`is_anonymous` in its
-- claims) or the service role acts for them (`auth.users.is_anonymous`).
-- Where auth.users does not exist (PostgreSQL without Supabase) only the
-- token's claim is consulted; the body is resolved when it runs, so the
-- reference below never fails there, and the row is read as JSON so a
-- column an older Auth schema lacks reads as absent. Read-only.
create or replace function platform.check_user_standing(p_user_id uuid, p_write boolean)
returns void
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_user jsonb;
begin
  if p_user_id is null then
    return;
  end if;
  if to_regclass('auth.users') is not null then
    select to_jsonb(u) into v_user from auth.users u where u.id = p_user_id;
  end if;
  if v_user ->> 'deleted_at' is not null then
    perform platform.fail('PT403', 'user_deleted', 'this user has been deleted');
  end if;
  if (v_user ->> 'banned_until')::timestamptz > now() then
    perform platform.fail('PT403', 'user_banned', 'this user is banned');
  end if;
  if p_write and (v_user -> 'is_anonymous' = 'true'::jsonb
                  or (not platform.is_service_role() and auth.jwt() -> 'is_anonymous' = 'true'::jsonb)) then
    perform platform.fail('PT403', 'anonymous_user_read_only',
      'anonymous users may only read; sign in with an account to do this');
  end if;
end
$$;

-- The user an RPC acts for. The service role (the edge, after verifying an API
-- key or a webhook) names the user; everyone else acts for themselves.
-- p_write refuses viewers and anonymous sign-ins, who may read but not
-- spend. A banned or deleted user is refused (check_user_standing) whoever
-- names them.
create or replace function platform.caller_user_id(p_user_id uuid, p_write boolean)
returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid;
  v_role text;
begin
  if platform.is_service_role() then
    if p_user_id is null then
      perform platform.fail('PT422', 'user_id_required', 'p_user_id is required when acting as the service role');
    end if;
    v_uid := p_user_id;
  else
    v_uid := auth.uid();
    if v_uid is null then
      perform platform.fail('PT401', 'not_authenticated', 'sign in to call this function');
    end if;
    if p_user_id is not null and p_user_id <> v_uid then
      perform platform.fail('PT403', 'forbidden', 'you may act only for yourself');
    end if;
  end if;
  perform platform.check_user_standing(v_uid, p_write);
  select u.role into v_role from platform.users u where u.id = v_uid;
  if not found then
    perform platform.fail('PT404', 'unknown_user', 'the user is not registered on the platform');
  end if;
  if p_write and v_role = 'viewer' then
    perform platform.fail('PT403', 'forbidden', 'viewers cannot spend tokens');
  end if;
  return v_uid;
end
$$;

-- The API key a service-role call names must belong to the user it acts for
-- and still be valid: usage queued while a key was valid is judged when it is
-- recorded, and a key revoked or expired by then spends nothing more. The
-- refusals are resolve_api_key's, with the same codes.
create or replace function platform.check_api_key_owner(p_api_key_id uuid, p_user_id uuid)
returns void
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_key platform.api_keys;
begin
  if p_api_key_id is null then
    return;
  end if;
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role names an API key');
  end if;
  select * into v_key from platform.api_keys k where k.id = p_api_key_id and k.user_id = p_user_id;
  if not found then
    perform platform.fail('PT422', 'unknown_api_key', 'no such API key for this user');
  end if;
  if v_key.revoked_at is not null then
    perform platform.fail('PT401', 'api_key_revoked', 'this API key has been revoked');
  end if;
  if v_key.expires_at is not null and v_key.expires_at <= now() then
    perform platform.fail('PT401', 'api_key_expired', 'this API key has expired');
  end if;
end
$$;

-- A JSON value as a token count: a whole number from 0 to 10^12.
create or replace function platform.token_count(p_value jsonb, p_field text)
returns bigint
language plpgsql immutable
set search_path = ''
as $$
declare
  v numeric;
begin
  if p_value is null or jsonb_typeof(p_value) <> 'number' then
    perform platform.fail('PT422', 'invalid_token_count', format('%s must be a whole number', p_field));
  end if;
  v := p_value::text::numeric;
  if v <> trunc(v) or v < 0 or v > 1000000000000 then
    perform platform.fail('PT422', 'invalid_token_count',
      format('%s must be a whole number from 0 to 1000000000000', p_field));
  end if;
  return v::bigint;
end
$$;

-- Locks the user's balance row, creating it on first use. Every RPC that
-- touches a balance takes this lock first, then any reservation row: one order
-- everywhere, so concurrent calls queue instead of deadlocking.
create or replace function platform.lock_balance(p_user_id uuid)
returns platform.token_balances
language plpgsql security definer
set search_path = ''
as $$
declare
  v platform.token_balances;
begin
  insert into platform.token_balances (user_id) values (p_user_id) on conflict (user_id) do nothing;
  select * into strict v from platform.token_balances b where b.user_id = p_user_id for update;
  return v;
end
$$;

revoke execute on function
  platform.fail(text, text, text),
  platform.is_uuid(text),
  platform.check_user_standing(uuid, boolean),
  platform.caller_user_id(uuid, boolean),
  platform.check_api_key_owner(uuid, uuid),
  platform.token_count(jsonb, text),
  platform.lock_balance(uuid)
  from public, anon, authenticated, service_role;
