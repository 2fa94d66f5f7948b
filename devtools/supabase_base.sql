-- The part of a Supabase project that exists before any of our migrations run,
-- set up as strictly as a hosted project has it.
--
-- A real Supabase project (hosted, or `supabase start`) already has these
-- roles, the `extensions` schema and Supabase Auth's `auth` schema. Plain
-- PostgreSQL has none of them, so the local stack applies this file first, as
-- the superuser `supabase_admin` (the cluster's bootstrap user, as on
-- Supabase). It is dev tooling: never shipped as a migration.
--
-- What a hosted project does and this file reproduces, because migrations that
-- pass here must pass there:
-- * `postgres` is NOT a superuser: it has CREATEROLE, CREATEDB, REPLICATION,
--   BYPASSRLS and LOGIN. `supabase db push` applies migrations as `postgres`,
--   and so does the local stack.
-- * `supabase_admin` is the superuser; it owns the extensions it installs.
-- * `anon`, `authenticated`, `service_role` are NOLOGIN; `service_role` has
--   BYPASSRLS. `authenticator` (LOGIN NOINHERIT) is PostgREST's login role and
--   is granted the three API roles.
-- * The `auth` schema and `auth.users` belong to `supabase_auth_admin`;
--   `postgres` may read and write `auth.users` and put triggers on it.
-- * Per-role timeouts: anon 3s, authenticated 8s, authenticator 8s (statement
--   and lock). PostgREST applies the impersonated role's settings per request.
-- * pg-safeupdate is preloaded for `authenticator`: every UPDATE or DELETE
--   without a WHERE clause run through the REST layer fails with 21000, also
--   inside function bodies (locally: the stand-in in devtools/safeupdate).
--
-- Re-runnable: every statement is guarded or idempotent. Roles are cluster
-- wide; the rest is per database.

do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('postgres',            'login nosuperuser createrole createdb replication bypassrls inherit'),
      ('anon',                'nologin noinherit'),
      ('authenticated',       'nologin noinherit'),
      ('service_role',        'nologin noinherit bypassrls'),
      ('authenticator',       'login noinherit'),
      ('supabase_auth_admin', 'login noinherit createrole')
    ) as roles(name, attributes)
  loop
    if not exists (select from pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.attributes);
    else
      execute format('alter role %I %s', r.name, r.attributes);
    end if;
  end loop;
end
$$;

grant anon, authenticated, service_role to authenticator;
-- The dashboard's SQL editor and `supabase test db` run as `postgres` and act
-- as the API roles (`set role authenticated`); hosted grants it the same.
grant anon, authenticated, service_role to postgres;
grant pg_signal_backend to postgres;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role authenticator set session_preload_libraries = 'safeupdate';

-- `postgres` creates our schemas; on Supabase it owns everything the
-- migrations create.
grant all on database postgres to postgres;
alter schema public owner to postgres;

-- Supabase installs extensions into their own schema, as the superuser.
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
grant create on schema extensions to postgres;

-- The `public` schema's default grants, as in every Supabase project: access
-- is then narrowed by row-level security and explicit revokes. Default
-- privileges belong to the role that creates the objects: `postgres`.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;

-- Supabase Auth's schema: the users table (the columns our code and tests
-- touch, with Supabase Auth's types) and the helpers policies call, owned by
-- Supabase Auth's role.
create schema if not exists auth authorization supabase_auth_admin;
alter schema auth owner to supabase_auth_admin;
grant usage on schema auth to postgres, anon, authenticated, service_role;

create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  banned_until timestamptz,
  deleted_at timestamptz,
  is_sso_user boolean not null default false,
  is_anonymous boolean not null default false
);
alter table auth.users owner to supabase_auth_admin;
grant all on auth.users to postgres;
grant select on auth.users to service_role;

-- `request.jwt.claim.sub` is the pre-PostgREST-9 setting; Supabase keeps
-- reading it first for old setups.
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to postgres, anon, authenticated, service_role;

-- Supabase puts `extensions` on the search path of its roles, so pgTAP's and
-- pgcrypto's functions resolve without a schema prefix.
alter role postgres set search_path to "$user", public, extensions;
