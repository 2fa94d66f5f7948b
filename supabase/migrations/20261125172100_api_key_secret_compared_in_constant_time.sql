-- resolve_api_key found a key by the SHA-256 of its secret: an index lookup,
-- which compares the presented hash with stored ones byte by byte and stops at
-- the first difference. The presenter does not choose that hash (SHA-256 of a
-- guess), so the timing says nothing useful; still, every secret comparison
-- is to be constant-time, with no argument needed. The key is now found by its
-- prefix, which is not secret (dashboards show it), and the hashes are
-- compared as HMACs under a key drawn for this call: whatever the comparison
-- leaks through timing is about values nobody can predict or choose.
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
  select u.role into v_role from platform.users u where u.id = v_key.user_id;
  -- Record use at most once a minute: a busy key must not turn into a hot row.
  if v_key.last_used_at is null or v_key.last_used_at < now() - interval '1 minute' then
    update platform.api_keys k set last_used_at = now() where k.id = v_key.id;
  end if;
  return jsonb_build_object('key_id', v_key.id, 'user_id', v_key.user_id,
    'scopes', to_jsonb(v_key.scopes), 'role', v_role);
end
$$;
