-- platform.deployment_status: what a doctor reports about a deployment.
-- Read only; the service role may call it, users may not. On a database
-- without pg_net, Vault and pg_cron it says exactly that; with stand-ins for
-- them, installed pieces show as installed. Secret values never appear.
begin;
select plan(7);
set local client_min_messages = error;

select (to_regnamespace('net') is null and to_regnamespace('vault') is null
        and to_regnamespace('cron') is null) as plain \gset

select tests.create_user('doctor@example.test', 'admin') as adam \gset
select tests.authenticate_as(:'adam');
select throws_ok($$ select platform.deployment_status() $$,
  '42501', 'permission denied for function deployment_status', 'not even an admin user calls it');
select tests.authenticate_as_anon();
select throws_ok($$ select platform.deployment_status() $$,
  '42501', 'permission denied for function deployment_status', 'anon may not call it');
select tests.clear_authentication();

\if :plain
select tests.authenticate_as_service_role();
select is(platform.deployment_status(),
  '{"user_mirror_webhook": {"installed": false,
                            "missing": ["pg_net", "vault", "vault_secret:edge_db_user_insert_url",
                                        "vault_secret:edge_db_webhook_secret"]},
    "maintenance_jobs": {"installed": false, "missing": ["pg_cron"],
                         "jobs": [{"name": "cds-vacuum-analyze-token-usage", "schedule": "17 3 * * *",
                                   "scheduled": false}]},
    "extensions": {"pg_net": false, "pg_cron": false, "vault": false},
    "vault_secrets": {"edge_db_user_insert_url": false, "edge_db_webhook_secret": false}}'::jsonb,
  'without pg_net, Vault and pg_cron, the service role is told each missing piece');
select tests.clear_authentication();

-- Stand-ins, as in the installers' tests.
create schema net;
create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
                              headers jsonb default '{}', timeout_milliseconds integer default 5000)
returns bigint language sql as $$ select 1::bigint $$;
create schema vault;
create table vault.secrets (id uuid primary key default gen_random_uuid(), name text unique, secret text);
create view vault.decrypted_secrets as select s.id, s.name, s.secret as decrypted_secret from vault.secrets s;
insert into vault.secrets (name, secret) values ('edge_db_user_insert_url', 'https://edge.example.test/hook');
create schema cron;
create table cron.job (jobid bigserial primary key, schedule text, command text, jobname text unique,
                       username text default current_user, active boolean default true);
create function cron.schedule(job_name text, schedule text, command text) returns bigint
language sql as $$
  insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
  on conflict (jobname) do update set schedule = excluded.schedule returning jobid
$$;

select tests.authenticate_as_service_role();
select is(platform.deployment_status() -> 'user_mirror_webhook',
  '{"installed": false, "missing": ["vault_secret:edge_db_webhook_secret"]}'::jsonb,
  'with pg_net and one secret, the other secret is what the webhook lacks');
select is(platform.deployment_status() -> 'extensions', '{"pg_net": true, "pg_cron": true, "vault": true}'::jsonb,
  'the extensions show as present');
select tests.clear_authentication();

insert into vault.secrets (name, secret) values ('edge_db_webhook_secret', 'very-secret-value');
select platform.install_user_mirror_webhook();
select platform.install_maintenance_jobs();
select tests.authenticate_as_service_role();
select is(platform.deployment_status(),
  '{"user_mirror_webhook": {"installed": true, "missing": []},
    "maintenance_jobs": {"installed": true, "missing": [],
                         "jobs": [{"name": "cds-vacuum-analyze-token-usage", "schedule": "17 3 * * *",
                                   "scheduled": true}]},
    "extensions": {"pg_net": true, "pg_cron": true, "vault": true},
    "vault_secrets": {"edge_db_user_insert_url": true, "edge_db_webhook_secret": true}}'::jsonb,
  'once installed, everything reads as installed');
select unalike(platform.deployment_status()::text, '%(very-secret-value|edge.example.test)%',
  'no secret value appears in the report');
select tests.clear_authentication();

\else
select skip('pg_net, Vault or pg_cron exists here: exact reports need a database without them', 5);
\endif

select * from finish();
rollback;
