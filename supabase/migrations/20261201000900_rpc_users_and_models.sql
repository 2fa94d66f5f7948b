-- Users and the model catalogue: mirror_auth_user (webhook and just in time),
-- set_default_model, list_models.

-- POST /rpc/mirror_auth_user (service role): the idempotent upsert of a
-- Supabase Auth user into platform.users, called by the edge: from the
-- auth.users Database Webhook (p_source 'webhook'), or just in time from a
-- verified access token the first time it sees a user (p_source 'jit'). A
-- retried or duplicated call changes nothing and succeeds. A banned or
-- soft-deleted Supabase user is refused (403 `user_banned` / `user_deleted`).
-- An email another platform user already has is refused with a coded 409
-- (`email_taken`), not a bare unique-violation error.
-- A call naming its source is counted as a call of `user_mirror_<source>`
-- and leaves a row in telemetry.user_mirrors with the user and whether the
-- row was created: JIT mirrors that create users mean the webhook is not
-- delivering.
-- (The guide's alternative, an `on auth.users` trigger `handle_new_user`, is
-- deliberately not installed: one path, at the edge, not both.)
create or replace function platform.mirror_auth_user(
  p_id uuid,
  p_email text default null,
  p_username text default null,
  p_role text default 'developer',
  p_source text default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_base text;
  v_username text;
  v_user platform.users;
  v_created boolean := false;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role mirrors users');
  end if;
  if p_id is null then
    perform platform.fail('PT422', 'invalid_user_id', 'p_id is required');
  end if;
  if p_role is null or p_role not in ('developer', 'viewer') then
    perform platform.fail('PT422', 'invalid_role', 'a mirrored user is a developer or a viewer');
  end if;
  if p_source is not null and p_source not in ('webhook', 'jit') then
    perform platform.fail('PT422', 'invalid_source', 'p_source is webhook or jit');
  end if;
  if p_email is not null and (p_email !~ '^[^@[:space:]]+@[^@[:space:]]+$' or length(p_email) > 320) then
    perform platform.fail('PT422', 'invalid_email', 'p_email is not an email address');
  end if;
  -- A token issued before a ban or soft delete is still verifiable at the
  -- edge: mirroring must neither re-create nor vouch for its user.
  perform platform.check_user_standing(p_id, false);

  select * into v_user from platform.users u where u.id = p_id;
  if not found then
    -- A username from the one asked for, else the email's local part: lower
    -- case, safe characters, starting with a letter or digit.
    v_base := lower(coalesce(nullif(p_username, ''), split_part(p_email, '@', 1), ''));
    v_base := regexp_replace(v_base, '[^a-z0-9_.-]', '', 'g');
    v_base := left(regexp_replace(v_base, '^[^a-z0-9]+', ''), 48);
    if v_base = '' then
      v_base := 'user';
    end if;
    v_username := v_base;
    if exists (select 1 from platform.users u where lower(u.username::text) = v_username) then
      v_username := v_base || '-' || left(replace(p_id::text, '-', ''), 8);
    end if;
    begin
      insert into platform.users (id, username, email, role)
      values (p_id, v_username, p_email, p_role)
      on conflict (id) do nothing
      returning * into v_user;
    exception
      when foreign_key_violation then
        perform platform.fail('PT422', 'unknown_auth_user', 'no Supabase Auth user has this id');
      when unique_violation then
        -- Two deliveries of the same new user at once: the loser's insert
        -- can meet the winner's row on the email or username index before
        -- the id arbiter sees it, and it waited for the winner to commit,
        -- so the winner's row is visible now. That is this user, not a
        -- clash.
        if not exists (select 1 from platform.users u where u.id = p_id) then
          -- Another platform user has this email (or, in a race, this
          -- username): a coded refusal the webhook's log can explain, rather
          -- than a bare constraint error that reads like an outage.
          perform platform.fail('PT409', 'email_taken',
            'another platform user already has this email address');
        end if;
    end;
    v_created := v_user.id is not null;
    if not v_created then
      select * into strict v_user from platform.users u where u.id = p_id;
    end if;
    insert into platform.token_balances (user_id) values (p_id) on conflict (user_id) do nothing;
  end if;

  if p_source is not null then
    insert into telemetry.user_mirrors (user_id, source, created) values (p_id, p_source, v_created);
    perform telemetry.record_call('user_mirror_' || p_source, 'ok', null,
                                  extract(epoch from clock_timestamp() - v_started) * 1000);
  end if;
  return jsonb_build_object('id', v_user.id, 'username', v_user.username, 'email', v_user.email,
    'role', v_user.role, 'created', v_created);
end
$$;
revoke execute on function platform.mirror_auth_user(uuid, text, text, text, text)
  from public, anon, authenticated, service_role;
grant execute on function platform.mirror_auth_user(uuid, text, text, text, text) to service_role;

-- POST /rpc/set_default_model: the caller's own default model.
create or replace function platform.set_default_model(p_model text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(null, false);
  v_model platform.models;
begin
  select * into v_model from platform.models m where m.name = p_model and m.is_active;
  if not found then
    perform platform.fail('PT422', 'unknown_model', format('unknown model %L', left(p_model, 128)));
  end if;
  update platform.users u set default_model_id = v_model.id where u.id = v_uid;
  return jsonb_build_object('user_id', v_uid, 'default_model', v_model.name);
end
$$;
revoke execute on function platform.set_default_model(text) from public, anon, authenticated, service_role;
grant execute on function platform.set_default_model(text) to authenticated;

-- POST /rpc/list_models: the public model catalogue (active models), for
-- anyone, signed in or not. GET /v1/models at the edge.
create or replace function platform.list_models()
returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'name', m.name, 'provider', m.provider, 'repo_url', m.repo_url,
           'context_size', m.context_size,
           'input_cost_per_1k_tokens', m.input_cost_per_1k_tokens,
           'output_cost_per_1k_tokens', m.output_cost_per_1k_tokens,
           'metadata', m.metadata)
         order by m.name), '[]')
    from platform.models m
   where m.is_active
$$;
revoke execute on function platform.list_models() from public, anon, authenticated, service_role;
grant execute on function platform.list_models() to anon, authenticated, service_role;
