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

revoke execute on function platform.list_api_keys() from public, anon, service_role;
grant execute on function platform.list_api_keys() to authenticated;
