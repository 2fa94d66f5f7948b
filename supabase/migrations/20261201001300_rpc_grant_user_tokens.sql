-- POST /rpc/grant_user_tokens: an admin (or the service role) credits a
-- user's balance; every grant is a row in the audit ledger. Idempotent on
-- (user, idempotency key) when a key is given: a retried grant answers exactly
-- what the first call answered (the balance right after the grant is kept
-- with it, as a retried usage event does), and a key reused for a grant with
-- another amount or reason is refused, not replayed.
--
-- The user is named by exactly one of p_user_id or p_email (an admin knows a
-- customer by their email). Emails are citext in platform.users, so the
-- lookup ignores case as Supabase Auth does (it stores them lower-cased);
-- the answer's user_id says whom the email named.
create or replace function platform.grant_user_tokens(
  p_user_id uuid,
  p_amount bigint,
  p_reason text,
  p_idempotency_key text default null,
  p_email text default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_by uuid;
  v_by_role text;
  v_grant platform.token_grants;
  v_balance platform.token_balances;
begin
  if platform.is_service_role() then
    v_by_role := 'service_role';
  elsif platform.is_admin() then
    v_by := auth.uid();
    v_by_role := 'admin';
  else
    perform platform.fail('PT403', 'forbidden', 'only admins grant tokens');
  end if;
  if p_amount is null or p_amount < 1 or p_amount > 1000000000000 then
    perform platform.fail('PT422', 'invalid_amount', 'amount must be a whole number from 1 to 1000000000000');
  end if;
  if p_reason is null or length(trim(p_reason)) not between 1 and 500 then
    perform platform.fail('PT422', 'invalid_reason', 'a reason of 1 to 500 characters is required');
  end if;
  if p_idempotency_key is not null and length(p_idempotency_key) not between 1 and 255 then
    perform platform.fail('PT422', 'invalid_idempotency_key', 'the idempotency key must be 1 to 255 characters');
  end if;
  if (p_user_id is null) = (p_email is null) then
    perform platform.fail('PT422', 'invalid_grantee', 'name the user by exactly one of user_id or email');
  end if;
  if p_email is not null then
    -- Longer than any stored email (the mirror's limit): no user. The
    -- operator is named: with an empty search_path a bare `=` would find
    -- only text's, which is case-sensitive; citext's uses the unique index.
    if length(p_email) <= 320 then
      select u.id into p_user_id from platform.users u
       where u.email operator(extensions.=) p_email::extensions.citext;
    end if;
    if p_user_id is null then
      perform platform.fail('PT404', 'unknown_user', 'no platform user has this email address');
    end if;
  elsif not exists (select 1 from platform.users u where u.id = p_user_id) then
    perform platform.fail('PT404', 'unknown_user', 'the user is not registered on the platform');
  end if;

  v_balance := platform.lock_balance(p_user_id);
  if p_idempotency_key is not null then
    select * into v_grant from platform.token_grants g
     where g.user_id = p_user_id and g.idempotency_key = p_idempotency_key;
    if found then
      if v_grant.amount <> p_amount or v_grant.reason <> trim(p_reason) then
        perform platform.fail('PT409', 'idempotency_key_reused',
          'this idempotency key was already used for a different grant');
      end if;
      return jsonb_build_object('grant_id', v_grant.id, 'user_id', p_user_id, 'amount', v_grant.amount,
        'balance', coalesce(v_grant.balance_after, v_balance.balance), 'replayed', true);
    end if;
  end if;

  insert into platform.token_grants (user_id, amount, reason, granted_by, granted_by_role, idempotency_key,
                                    balance_after)
  values (p_user_id, p_amount, trim(p_reason), v_by, v_by_role, p_idempotency_key,
          v_balance.balance + p_amount)
  returning * into v_grant;
  update platform.token_balances b set granted = b.granted + p_amount, updated_at = now()
   where b.user_id = p_user_id
  returning * into v_balance;
  return jsonb_build_object('grant_id', v_grant.id, 'user_id', p_user_id, 'amount', p_amount,
    'balance', v_balance.balance, 'replayed', false);
end
$$;
revoke execute on function platform.grant_user_tokens(uuid, bigint, text, text, text)
  from public, anon, authenticated, service_role;
grant execute on function platform.grant_user_tokens(uuid, bigint, text, text, text) to authenticated, service_role;
