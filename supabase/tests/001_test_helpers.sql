-- Installs the helpers every other test file uses, in schema `tests`
-- (basejump's supabase-test-helpers pattern). Unlike the other files this one
-- commits, so it must run first; the test command runs files in name order.
begin;
create extension if not exists pgtap with schema extensions;
create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

-- A user as signup leaves them: in auth.users, mirrored into platform.users,
-- with an empty balance. Returns the id.
create or replace function tests.create_user(p_email text, p_role text default 'developer')
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  v_id uuid := gen_random_uuid();
begin
  insert into auth.users (id, aud, role, email, created_at, updated_at)
  values (v_id, 'authenticated', 'authenticated', p_email, now(), now());
  insert into platform.users (id, username, email, role)
  values (v_id, left(regexp_replace(lower(split_part(p_email, '@', 1)), '[^a-z0-9_.-]', '', 'g'), 40)
                || '-' || left(replace(v_id::text, '-', ''), 8), p_email, p_role);
  insert into platform.token_balances (user_id) values (v_id);
  return v_id;
end
$$;

-- Act as a signed-in user for the rest of the transaction, as PostgREST does
-- for a request carrying that user's JWT.
create or replace function tests.authenticate_as(p_user_id uuid)
returns void
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims',
    jsonb_build_object('sub', p_user_id, 'role', 'authenticated', 'aud', 'authenticated')::text, true);
  perform set_config('role', 'authenticated', true);
end
$$;

create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  perform set_config('role', 'service_role', true);
end
$$;

create or replace function tests.authenticate_as_anon()
returns void
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
  perform set_config('role', 'anon', true);
end
$$;

-- Back to the test's own (superuser) session.
create or replace function tests.clear_authentication()
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
end
$$;

-- Credits a user as the service role would, without changing who the test acts as.
create or replace function tests.grant_tokens(p_user_id uuid, p_amount bigint)
returns void
language plpgsql
as $$
declare
  v_claims text := current_setting('request.jwt.claims', true);
begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  perform platform.grant_user_tokens(p_user_id, p_amount, 'test grant');
  perform set_config('request.jwt.claims', coalesce(v_claims, ''), true);
end
$$;

-- The stable code (HINT) a refused statement carries; null if it succeeds.
create or replace function tests.refusal_code(p_sql text) returns text
language plpgsql as $$
declare
  v_hint text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics v_hint = pg_exception_hint;
  return v_hint;
end
$$;

-- The daily summary as computed from scratch from the ledger.
create or replace function tests.ledger_aggregate() returns table (
  day date, user_id uuid, model_id bigint, requests bigint, prompt_tokens bigint,
  completion_tokens bigint, total_tokens bigint, cost numeric)
language sql as $$
  select (u.created_at at time zone 'UTC')::date, u.user_id, u.model_id, count(*), sum(u.prompt_tokens)::bigint,
         sum(u.completion_tokens)::bigint, sum(u.total_tokens)::bigint, sum(u.cost)
    from platform.token_usage u group by 1, 2, 3
$$;

-- Rows in which p_source (analytics.daily_token_summary or _rollup) and
-- tests.ledger_aggregate() differ, both ways; 0 when equal. Only p_user's
-- rows when given.
create or replace function tests.summary_mismatches(p_source regclass, p_user uuid default null)
returns bigint
language plpgsql as $$
declare
  v_off bigint;
begin
  execute format($q$
    select count(*) from (
      (select day, user_id, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost
         from %1$s where $1 is null or user_id = $1
       except all
       select * from tests.ledger_aggregate() where $1 is null or user_id = $1)
      union all
      (select * from tests.ledger_aggregate() where $1 is null or user_id = $1
       except all
       select day, user_id, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost
         from %1$s where $1 is null or user_id = $1)) x$q$, p_source)
    into v_off using p_user;
  return v_off;
end
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
-- Creating users is the test's own (superuser) business, never an API role's,
-- should these helpers ever be installed in a shared database.
revoke execute on function tests.create_user(text, text) from public, anon, authenticated, service_role;

select plan(1);
select has_function('tests', 'authenticate_as', array['uuid'], 'test helpers are installed');
select * from finish();
commit;
