-- POST /rpc/deployment_status (service role; postgres in the SQL Editor): what
-- a deployment still lacks, for a doctor to report. Read only; it installs
-- nothing (the installers do: platform.install_user_mirror_webhook(),
-- platform.install_maintenance_jobs()).
--
--   {"user_mirror_webhook": {"installed": bool, "missing": [...]},
--    "maintenance_jobs": {"installed": bool, "missing": [...],
--                         "jobs": [{"name", "schedule", "scheduled": bool}]},
--    "extensions": {"pg_net": bool, "pg_cron": bool, "vault": bool},
--    "vault_secrets": {"edge_db_user_insert_url": bool, "edge_db_webhook_secret": bool}}
--
-- Vault secrets are reported by name only; no value is read. security
-- definer: the service role may not read Vault's or pg_cron's tables itself.
create or replace function platform.deployment_status()
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_webhook_missing text[] := platform.user_mirror_webhook_missing();
  v_cron_missing text[] := platform.maintenance_jobs_missing();
  v_jobs jsonb;
begin
  if cardinality(v_cron_missing) = 0 then
    select jsonb_agg(jsonb_build_object('name', j.name, 'schedule', j.schedule,
             'scheduled', exists (select 1 from cron.job c where c.jobname = j.name and c.active))
           order by j.name)
      into v_jobs
      from platform.maintenance_jobs() j;
  else
    select jsonb_agg(jsonb_build_object('name', j.name, 'schedule', j.schedule, 'scheduled', false)
           order by j.name)
      into v_jobs
      from platform.maintenance_jobs() j;
  end if;

  return jsonb_build_object(
    'user_mirror_webhook', jsonb_build_object(
      'installed', exists (select 1 from pg_catalog.pg_trigger t
                            where t.tgrelid = to_regclass('auth.users')
                              and t.tgname = 'on_auth_user_created_notify_edge'
                              and t.tgenabled <> 'D'),
      'missing', to_jsonb(v_webhook_missing)),
    'maintenance_jobs', jsonb_build_object(
      'installed', not jsonb_path_exists(v_jobs, '$[*] ? (@.scheduled == false)'),
      'missing', to_jsonb(v_cron_missing),
      'jobs', v_jobs),
    'extensions', jsonb_build_object(
      'pg_net', not 'pg_net' = any (v_webhook_missing),
      'pg_cron', not 'pg_cron' = any (v_cron_missing),
      'vault', not 'vault' = any (v_webhook_missing)),
    'vault_secrets', jsonb_build_object(
      'edge_db_user_insert_url', not 'vault_secret:edge_db_user_insert_url' = any (v_webhook_missing),
      'edge_db_webhook_secret', not 'vault_secret:edge_db_webhook_secret' = any (v_webhook_missing)));
end
$$;
revoke execute on function platform.deployment_status() from public, anon, authenticated, service_role;
grant execute on function platform.deployment_status() to service_role;
