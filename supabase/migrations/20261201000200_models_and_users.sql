-- The model catalogue and the platform's users, and the two questions every
-- policy asks about the caller: is it an admin, is it the service role.

create table if not exists platform.models (
  id bigint generated always as identity primary key,
  name text not null unique
    constraint models_name_format check (name ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'),
  provider text not null
    constraint models_provider_length check (length(provider) between 1 and 64),
  repo_url text
    constraint models_repo_url_https check (repo_url ~ '^https://[^[:space:]]+$'),
  context_size integer not null
    constraint models_context_size_positive check (context_size > 0),
  -- Prices per 1,000 tokens, apart for input (prompt) and output
  -- (completion) tokens, as providers price them.
  input_cost_per_1k_tokens numeric(14, 6) not null default 0
    constraint models_input_cost_non_negative check (input_cost_per_1k_tokens >= 0),
  output_cost_per_1k_tokens numeric(14, 6) not null default 0
    constraint models_output_cost_non_negative check (output_cost_per_1k_tokens >= 0),
  metadata jsonb not null default '{}'
    constraint models_metadata_object check (jsonb_typeof(metadata) = 'object'),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table platform.models is
  'Models usage can be recorded against; prices are per 1,000 input (prompt) and output (completion) tokens';

-- id is the Supabase Auth user id: the row mirrors auth.users (see
-- platform.mirror_auth_user).
create table if not exists platform.users (
  id uuid primary key,
  username extensions.citext not null unique
    constraint users_username_format check (username ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  email extensions.citext unique
    constraint users_email_format check (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  role text not null default 'developer'
    constraint users_role_known check (role in ('admin', 'developer', 'viewer')),
  default_model_id bigint references platform.models (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table platform.users is 'Platform users, one per Supabase Auth user, mirrored at signup by the edge';
create index if not exists users_default_model_id_idx on platform.users (default_model_id);

-- Deleting the Supabase Auth user deletes the platform user and, through the
-- cascades of the tables that reference platform.users, everything that is
-- theirs. Only where auth.users exists.
do $$
begin
  if to_regclass('auth.users') is not null
     and not exists (select 1 from pg_constraint where conname = 'users_id_auth_users_fkey') then
    alter table platform.users
      add constraint users_id_auth_users_fkey foreign key (id) references auth.users (id) on delete cascade;
  end if;
end
$$;

-- updated_at is the time of the last change, whoever made it.
create or replace function platform.touch_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke execute on function platform.touch_updated_at() from public, anon, authenticated, service_role;

create or replace trigger models_touch_updated_at before update on platform.models
  for each row execute function platform.touch_updated_at();
create or replace trigger users_touch_updated_at before update on platform.users
  for each row execute function platform.touch_updated_at();

-- Who is calling, for policies and functions. security definer so a policy on
-- platform.users can ask without recursing into its own policy. An admin whom
-- Supabase Auth has banned or soft-deleted is refused outright
-- (platform.check_user_standing, resolved when it runs), not served as admin.
create or replace function platform.is_admin() returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from platform.users u where u.id = auth.uid() and u.role = 'admin') then
    return false;
  end if;
  perform platform.check_user_standing(auth.uid(), false);
  return true;
end
$$;

create or replace function platform.is_service_role() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(auth.role() = 'service_role', false)
$$;

-- Policies call these as the querying role.
revoke execute on function platform.is_admin(), platform.is_service_role()
  from public, anon, authenticated, service_role;
grant execute on function platform.is_admin(), platform.is_service_role() to anon, authenticated, service_role;

alter table platform.models enable row level security;
alter table platform.users enable row level security;

revoke all on platform.models, platform.users from public, anon, authenticated;
grant select on platform.models to anon, authenticated;
grant select on platform.users to authenticated;
grant all on platform.models, platform.users to service_role;

drop policy if exists "anyone reads active models" on platform.models;
create policy "anyone reads active models" on platform.models
  for select to anon, authenticated
  using (is_active or (select platform.is_admin()));

drop policy if exists "users read themselves, admins read all" on platform.users;
create policy "users read themselves, admins read all" on platform.users
  for select to authenticated
  using (id = (select auth.uid()) or (select platform.is_admin()));
