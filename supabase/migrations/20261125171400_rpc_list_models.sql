-- POST /rpc/list_models: the public model catalogue (active models), for
-- anyone, signed in or not. GET /v1/models at the edge.
create or replace function platform.list_models()
returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'name', m.name, 'provider', m.provider, 'repo_url', m.repo_url,
           'context_size', m.context_size, 'cost_per_1k_tokens', m.cost_per_1k_tokens,
           'metadata', m.metadata)
         order by m.name), '[]')
    from platform.models m
   where m.is_active
$$;

revoke execute on function platform.list_models() from public;
grant execute on function platform.list_models() to anon, authenticated, service_role;
