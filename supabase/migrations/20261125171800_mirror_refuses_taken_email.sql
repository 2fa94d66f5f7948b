-- mirror_auth_user refuses an email another platform user already has with a
-- coded 409 (`email_taken`) instead of a bare unique-violation error.

create or replace function platform.mirror_auth_user(
  p_id uuid,
  p_email text default null,
  p_username text default null,
  p_role text default 'developer'
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
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
  if p_email is not null and (p_email !~ '^[^@[:space:]]+@[^@[:space:]]+$' or length(p_email) > 320) then
    perform platform.fail('PT422', 'invalid_email', 'p_email is not an email address');
  end if;

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
        -- Another platform user has this email (or, in a race, this
        -- username): a coded refusal the webhook's log can explain, rather
        -- than a bare constraint error that reads like an outage.
        perform platform.fail('PT409', 'email_taken',
          'another platform user already has this email address');
    end;
    v_created := v_user.id is not null;
    if not v_created then
      select * into strict v_user from platform.users u where u.id = p_id;
    end if;
    insert into platform.token_balances (user_id) values (p_id) on conflict (user_id) do nothing;
  end if;

  return jsonb_build_object('id', v_user.id, 'username', v_user.username, 'email', v_user.email,
    'role', v_user.role, 'created', v_created);
end
$$;
