-- POST /rpc/cds_deployment_report (service role): what the deployment doctor
-- (`cargo xtask doctor`, and the Worker's `GET /health?deep=1`) needs to know
-- from inside the database, in one call through the REST layer.
--
-- It lives in `public`, which every Supabase project exposes, so that the
-- doctor can describe a project whose `platform` schema is not exposed yet
-- (the first thing a new deployment misses); hence the `cds_` prefix. Only
-- the service role may call it.
--
--
-- * `functions`: every function in `platform` with its input argument names,
--   so the doctor can tell a missing or outdated RPC from the edge's list;
-- * `active_models`: whether usage can be recorded at all;
-- * `role_settings`: the per-role settings PostgREST applies (timeouts);
-- * `safeupdate`: whether an UPDATE/DELETE without WHERE is refused in this
--   very session, as hosted Supabase does for every REST session. Probed on
--   an empty temporary table, so nothing real is ever at risk;
-- * `integrations`: the optional parts (the user-mirror webhook, the pg_cron
--   maintenance job), as `platform.deployment_status()` reports them.
--
-- Volatile (the probe creates a temporary table): PostgREST runs a POST to a
-- stable function read-only.
create or replace function public.cds_deployment_report()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_safeupdate boolean;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role reads the deployment report');
  end if;

  begin
    create temporary table if not exists deployment_report_probe (x integer) on commit drop;
    delete from pg_temp.deployment_report_probe;
    v_safeupdate := false;
  exception when cardinality_violation then
    v_safeupdate := true;
  end;

  return jsonb_build_object(
    'functions', (
      select coalesce(jsonb_agg(jsonb_build_object('name', f.name, 'args', f.args) order by f.name, f.args), '[]')
        from (
          select p.proname::text as name,
                 coalesce((
                   select jsonb_agg(a.name order by a.position)
                     from unnest(coalesce(p.proargnames, array[]::text[]),
                                 coalesce(p.proargmodes::text[], array_fill('i'::text, array[p.pronargs])))
                            with ordinality as a(name, mode, position)
                    where a.mode in ('i', 'b', 'v')
                 ), '[]') as args
            from pg_catalog.pg_proc p
           where p.pronamespace = 'platform'::regnamespace
        ) f
    ),
    'active_models', (select count(*) from platform.models m where m.is_active),
    'role_settings', (
      select coalesce(jsonb_object_agg(r.rolname, s.settings), '{}')
        from pg_catalog.pg_roles r
        cross join lateral (
          select coalesce(jsonb_object_agg(split_part(c, '=', 1), substr(c, strpos(c, '=') + 1)), '{}') as settings
            from pg_catalog.pg_db_role_setting d
            cross join unnest(d.setconfig) c
           where d.setrole = r.oid
             and d.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = current_database()))
        ) s
       where r.rolname in ('anon', 'authenticated', 'authenticator', 'service_role')
    ),
    'safeupdate', v_safeupdate,
    'integrations', platform.deployment_status()
  );
end
$$;
revoke execute on function public.cds_deployment_report() from public, anon, authenticated, service_role;
grant execute on function public.cds_deployment_report() to service_role;
