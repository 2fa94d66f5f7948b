-- What a user owns: projects, agent sessions within them, and API keys for
-- their LLM servers.

create table if not exists platform.projects (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references platform.users (id) on delete cascade,
  name text not null
    constraint projects_name_length check (length(name) between 1 and 100),
  description text
    constraint projects_description_length check (length(description) <= 2000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint projects_owner_name_unique unique (owner_id, name)
);

create table if not exists platform.sessions (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references platform.projects (id) on delete cascade,
  user_id uuid not null references platform.users (id) on delete cascade,
  title text
    constraint sessions_title_length check (length(title) <= 200),
  status text not null default 'active'
    constraint sessions_status_known check (status in ('active', 'completed', 'failed', 'cancelled')),
  metadata jsonb not null default '{}'
    constraint sessions_metadata_object check (jsonb_typeof(metadata) = 'object'),
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  constraint sessions_ended_after_start check (ended_at is null or ended_at >= started_at)
);
create index if not exists sessions_project_id_idx on platform.sessions (project_id);
create index if not exists sessions_user_id_idx on platform.sessions (user_id);

-- A key is `cds_<id>_<secret>`, the id 24 characters (96 random bits, so two
-- keys never share a prefix in practice; should it happen, the insert fails on
-- `api_keys_prefix_key` and the edge answers 409 `api_key_id_taken`, to retry).
-- Only the visible prefix and the SHA-256 of the secret are stored; the secret
-- itself is shown once at creation and never reaches the database.
create table if not exists platform.api_keys (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references platform.users (id) on delete cascade,
  name text not null
    constraint api_keys_name_length check (length(name) between 1 and 100),
  prefix text not null
    constraint api_keys_prefix_key unique
    constraint api_keys_prefix_format check (prefix ~ '^cds_[0-9a-z]{24}$'),
  secret_hash text not null unique
    constraint api_keys_secret_hash_format check (secret_hash ~ '^[0-9a-f]{64}$'),
  scopes text[] not null default array['usage:write']
    constraint api_keys_scopes_known check (
      cardinality(scopes) > 0 and scopes <@ array['usage:write', 'usage:read']
    ),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  constraint api_keys_expiry_after_creation check (expires_at is null or expires_at > created_at)
);
create index if not exists api_keys_user_id_idx on platform.api_keys (user_id);

create or replace trigger projects_touch_updated_at before update on platform.projects
  for each row execute function platform.touch_updated_at();

-- Per-user bounds, so no user can grow the database without limit. The
-- frontend writes projects and sessions straight through PostgREST, so the
-- bounds are enforced here, by triggers that refuse with the RPCs'
-- convention (platform.fail: SQLSTATE PTxyz, safe message, stable code),
-- rather than by CHECK constraints, which PostgREST would answer as a bare
-- 400 23514.
create or replace function platform.max_projects_per_user() returns integer
language sql immutable
set search_path = ''
as $$ select 100 $$;
create or replace function platform.max_sessions_per_user() returns integer
language sql immutable
set search_path = ''
as $$ select 10000 $$;
-- Any JSON metadata a user stores (sessions, usage events), as JSON text.
create or replace function platform.max_metadata_bytes() returns integer
language sql immutable
set search_path = ''
as $$ select 8192 $$;

-- A new project or session within its user's cap. Concurrent inserts of the
-- same user queue on a transaction-scoped advisory lock, so the count holds.
create or replace function platform.enforce_per_user_cap() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_cap integer;
  v_count bigint;
begin
  if tg_table_name = 'projects' then
    v_user := new.owner_id;
    v_cap := platform.max_projects_per_user();
    perform pg_advisory_xact_lock(hashtextextended('platform.projects ' || v_user::text, 0));
    select count(*) into v_count from platform.projects p where p.owner_id = v_user;
    if v_count >= v_cap then
      perform platform.fail('PT409', 'too_many_projects',
        format('delete a project first: at most %s projects per user', v_cap));
    end if;
  else
    v_user := new.user_id;
    v_cap := platform.max_sessions_per_user();
    perform pg_advisory_xact_lock(hashtextextended('platform.sessions ' || v_user::text, 0));
    select count(*) into v_count from platform.sessions s where s.user_id = v_user;
    if v_count >= v_cap then
      perform platform.fail('PT409', 'too_many_sessions',
        format('delete a session first: at most %s sessions per user', v_cap));
    end if;
  end if;
  return new;
end
$$;

-- A session's metadata within the byte cap, on insert and update.
create or replace function platform.enforce_session_metadata_size() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if octet_length(new.metadata::text) > platform.max_metadata_bytes() then
    perform platform.fail('PT422', 'invalid_metadata',
      format('metadata must be at most %s bytes as JSON text', platform.max_metadata_bytes()));
  end if;
  return new;
end
$$;

create or replace trigger projects_per_user_cap before insert on platform.projects
  for each row execute function platform.enforce_per_user_cap();
create or replace trigger sessions_per_user_cap before insert on platform.sessions
  for each row execute function platform.enforce_per_user_cap();
create or replace trigger sessions_metadata_size before insert or update of metadata on platform.sessions
  for each row execute function platform.enforce_session_metadata_size();

revoke execute on function
  platform.max_projects_per_user(),
  platform.max_sessions_per_user(),
  platform.max_metadata_bytes(),
  platform.enforce_per_user_cap(),
  platform.enforce_session_metadata_size()
  from public, anon, authenticated, service_role;

alter table platform.projects enable row level security;
alter table platform.sessions enable row level security;
alter table platform.api_keys enable row level security;

revoke all on platform.projects, platform.sessions, platform.api_keys from public, anon, authenticated;
-- Projects and sessions are the user's own workspace: the frontend manages
-- them directly, within the policies below. Keys change only through RPCs.
grant select, insert, update, delete on platform.projects, platform.sessions to authenticated;
-- Every column but the hash.
grant select (id, user_id, name, prefix, scopes, created_at, last_used_at, expires_at, revoked_at)
  on platform.api_keys to authenticated;
grant all on platform.projects, platform.sessions, platform.api_keys to service_role;

drop policy if exists "owners read their projects, admins read all" on platform.projects;
create policy "owners read their projects, admins read all" on platform.projects
  for select to authenticated
  using (owner_id = (select auth.uid()) or (select platform.is_admin()));
drop policy if exists "owners create their projects" on platform.projects;
create policy "owners create their projects" on platform.projects
  for insert to authenticated
  with check (owner_id = (select auth.uid()));
drop policy if exists "owners update their projects" on platform.projects;
create policy "owners update their projects" on platform.projects
  for update to authenticated
  using (owner_id = (select auth.uid()))
  with check (owner_id = (select auth.uid()));
drop policy if exists "owners delete their projects" on platform.projects;
create policy "owners delete their projects" on platform.projects
  for delete to authenticated
  using (owner_id = (select auth.uid()));

drop policy if exists "users read their sessions, admins read all" on platform.sessions;
create policy "users read their sessions, admins read all" on platform.sessions
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));
-- A session is opened by its user, in a project that user owns.
drop policy if exists "users open sessions in their projects" on platform.sessions;
create policy "users open sessions in their projects" on platform.sessions
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and exists (
      select 1 from platform.projects p
      where p.id = project_id and p.owner_id = (select auth.uid())
    )
  );
drop policy if exists "users update their sessions" on platform.sessions;
create policy "users update their sessions" on platform.sessions
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and exists (
      select 1 from platform.projects p
      where p.id = project_id and p.owner_id = (select auth.uid())
    )
  );
drop policy if exists "users delete their sessions" on platform.sessions;
create policy "users delete their sessions" on platform.sessions
  for delete to authenticated
  using (user_id = (select auth.uid()));

drop policy if exists "owners read their keys, admins read all" on platform.api_keys;
create policy "owners read their keys, admins read all" on platform.api_keys
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));
