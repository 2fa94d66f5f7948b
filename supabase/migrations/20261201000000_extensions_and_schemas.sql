-- Extensions and the three schemas of the data layer.
--
-- Supabase keeps extensions in the `extensions` schema. `vector` and
-- `postgresml` (`pgml`) are optional: the guide lists "postgresml extension is
-- not available" as a known situation, so they are created only where the
-- server offers them, and a notice says when they are skipped.

create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists citext with schema extensions;

do $$
declare
  optional text;
begin
  foreach optional in array array['vector', 'pgml'] loop
    if exists (select 1 from pg_available_extensions where name = optional) then
      execute format('create extension if not exists %I with schema extensions', optional);
    else
      raise notice 'extension % is not available on this server; skipped', optional;
    end if;
  end loop;
end
$$;

-- platform: users, keys, projects, models and token accounting (RPCs live here).
-- telemetry: what the edge functions record about themselves.
-- analytics: summaries derived from the ledger.
create schema if not exists platform;
create schema if not exists telemetry;
create schema if not exists analytics;

comment on schema platform is 'CyberDevStudio: users, API keys, projects, models, token accounting and the RPCs the edge calls';
comment on schema telemetry is 'CyberDevStudio: execution metrics written by the edge functions';
comment on schema analytics is 'CyberDevStudio: summaries derived from the token ledger';

-- Row-level security decides which rows; these grants decide which schemas.
grant usage on schema platform to anon, authenticated, service_role;
grant usage on schema telemetry to authenticated, service_role;
grant usage on schema analytics to authenticated, service_role;

-- PostgreSQL lets PUBLIC execute every new function, through the global
-- default privileges. A per-schema `alter default privileges in schema x
-- revoke ... from public` cannot take that away (it only undoes a per-schema
-- grant), so the revoke is global, for the role that runs the migrations and
-- owns what they create (`postgres` under `supabase db push`). Nothing we
-- create is then callable until a migration grants it to the roles that need
-- it. In `public`, Supabase's own per-schema default still grants execute to
-- anon, authenticated and service_role; our one function there revokes that
-- explicitly. Re-running this statement changes nothing.
alter default privileges revoke execute on functions from public;
