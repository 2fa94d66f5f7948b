-- Reservations (holds) that enforce balances before the LLM call:
-- reserve_tokens, release_token_reservation, release_expired_reservations.
-- Recording the usage afterwards settles the hold (record_token_usage's
-- p_reservation_id).

-- POST /rpc/reserve_tokens: holds p_tokens of the caller's balance before an
-- LLM call. Succeeds only while balance minus active holds covers it, so
-- concurrent callers can never together hold more than the balance.
create or replace function platform.reserve_tokens(
  p_tokens bigint,
  p_ttl_seconds integer default 300,
  p_user_id uuid default null,
  p_api_key_id uuid default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, true);
  v_balance platform.token_balances;
  v_expired bigint;
  v_available bigint;
  v_reservation platform.token_reservations;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  if p_tokens is null or p_tokens < 1 or p_tokens > 1000000000000 then
    perform platform.fail('PT422', 'invalid_token_count', 'tokens must be a whole number from 1 to 1000000000000');
  end if;
  if p_ttl_seconds is null or p_ttl_seconds not between 10 and 3600 then
    perform platform.fail('PT422', 'invalid_ttl', 'ttl_seconds must be from 10 to 3600');
  end if;

  v_balance := platform.lock_balance(v_uid);
  -- Holds past their expiry return to the balance now, not only when the
  -- scheduled job runs.
  with expired as (
    update platform.token_reservations r
       set status = 'expired', closed_at = now()
     where r.user_id = v_uid and r.status = 'active' and r.expires_at <= now()
    returning r.tokens
  )
  select coalesce(sum(tokens), 0) into v_expired from expired;

  v_available := v_balance.balance - (v_balance.reserved - v_expired);
  if v_available < p_tokens then
    perform platform.fail('PT402', 'insufficient_balance',
      format('%s tokens requested, %s available', p_tokens, greatest(v_available, 0)));
  end if;

  insert into platform.token_reservations (user_id, api_key_id, tokens, expires_at)
  values (v_uid, p_api_key_id, p_tokens, now() + make_interval(secs => p_ttl_seconds))
  returning * into v_reservation;
  update platform.token_balances b
     set reserved = b.reserved - v_expired + p_tokens, updated_at = now()
   where b.user_id = v_uid;

  return jsonb_build_object(
    'reservation_id', v_reservation.id,
    'tokens', v_reservation.tokens,
    'expires_at', v_reservation.expires_at,
    'available', v_available - p_tokens
  );
end
$$;
revoke execute on function platform.reserve_tokens(bigint, integer, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.reserve_tokens(bigint, integer, uuid, uuid) to authenticated, service_role;

-- POST /rpc/release_token_reservation: gives a hold back early. Only the
-- caller that took the hold may release it: the same API key (the service
-- role names it as p_api_key_id) when it was taken with a key, or the user
-- acting for themselves (their own token, or the service role naming no key)
-- when it was taken without one. A hold of the same user taken by another
-- caller is refused with 403 not_reservation_holder: the user may see their
-- holds anyway, so its existence is no secret from them; a hold of another
-- user stays unknown (404). Releasing a hold that is no longer active answers
-- its status and changes nothing.
create or replace function platform.release_token_reservation(
  p_reservation_id uuid,
  p_user_id uuid default null,
  p_api_key_id uuid default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, false);
  v_hold platform.token_reservations;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  perform platform.lock_balance(v_uid);
  select * into v_hold from platform.token_reservations r
   where r.id = p_reservation_id and r.user_id = v_uid
   for update;
  if not found then
    perform platform.fail('PT404', 'unknown_reservation', 'no such reservation for this user');
  end if;
  if v_hold.api_key_id is distinct from p_api_key_id then
    perform platform.fail('PT403', 'not_reservation_holder',
      'only the caller that took this hold may release it early');
  end if;
  if v_hold.status <> 'active' then
    return jsonb_build_object('reservation_id', p_reservation_id, 'status', v_hold.status, 'released_tokens', 0);
  end if;
  update platform.token_reservations r
     set status = 'released', closed_at = now()
   where r.id = p_reservation_id;
  update platform.token_balances b set reserved = b.reserved - v_hold.tokens, updated_at = now()
   where b.user_id = v_uid;
  return jsonb_build_object('reservation_id', p_reservation_id, 'status', 'released', 'released_tokens', v_hold.tokens);
end
$$;
revoke execute on function platform.release_token_reservation(uuid, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.release_token_reservation(uuid, uuid, uuid) to authenticated, service_role;

-- POST /rpc/release_expired_reservations: the scheduled job's sweep (service
-- role). Returns how many holds and tokens went back to their users.
create or replace function platform.release_expired_reservations()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_count bigint;
  v_tokens bigint;
  v_total_count bigint := 0;
  v_total_tokens bigint := 0;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role releases expired reservations');
  end if;
  for v_user in
    select distinct r.user_id from platform.token_reservations r
     where r.status = 'active' and r.expires_at <= now()
  loop
    perform platform.lock_balance(v_user);
    with expired as (
      update platform.token_reservations r
         set status = 'expired', closed_at = now()
       where r.user_id = v_user and r.status = 'active' and r.expires_at <= now()
      returning r.tokens
    )
    select count(*), coalesce(sum(tokens), 0) into v_count, v_tokens from expired;
    update platform.token_balances b set reserved = b.reserved - v_tokens, updated_at = now()
     where b.user_id = v_user;
    v_total_count := v_total_count + v_count;
    v_total_tokens := v_total_tokens + v_tokens;
  end loop;
  return jsonb_build_object('released', v_total_count, 'tokens', v_total_tokens);
end
$$;
revoke execute on function platform.release_expired_reservations()
  from public, anon, authenticated, service_role;
grant execute on function platform.release_expired_reservations() to service_role;
