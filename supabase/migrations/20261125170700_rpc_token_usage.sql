-- Recording usage: record_token_usage (one event) and record_token_usage_batch
-- (many, one result each), and the reservations that enforce balances before
-- the LLM call: reserve_tokens, release_token_reservation,
-- release_expired_reservations.
--
-- Usage that already happened is never refused for lack of balance: the
-- tokens are spent, and refusing the record would lose it. Enforcement
-- happens before the work, by reservation (authorize, then capture).

-- The answer to a recorded (or replayed) event, built from the ledger row so a
-- retry answers exactly what the first call answered.
create or replace function platform.usage_result(p_row platform.token_usage, p_replayed boolean)
returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'usage_id', p_row.id,
    'model', (select m.name from platform.models m where m.id = p_row.model_id),
    'prompt_tokens', p_row.prompt_tokens,
    'completion_tokens', p_row.completion_tokens,
    'total_tokens', p_row.total_tokens,
    'cost', p_row.cost,
    'balance', p_row.balance_after,
    'exhausted', p_row.balance_after <= 0,
    'replayed', p_replayed,
    'reservation', case when p_row.reservation_id is null then null
      else jsonb_build_object('id', p_row.reservation_id, 'outcome', p_row.reservation_outcome) end,
    'created_at', p_row.created_at
  )
$$;

-- A retry of an event already recorded: the first answer when it asks the
-- same thing, a refusal when the key is reused for a different event.
create or replace function platform.usage_replay(
  p_row platform.token_usage,
  p_model_id bigint,
  p_prompt bigint,
  p_completion bigint,
  p_project_id uuid,
  p_session_id uuid,
  p_metadata jsonb,
  p_reservation_id uuid
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if (p_row.model_id, p_row.prompt_tokens, p_row.completion_tokens)
       is distinct from (p_model_id, p_prompt, p_completion)
     or (p_row.project_id, p_row.session_id, p_row.reservation_id)
       is distinct from (p_project_id, p_session_id, p_reservation_id)
     or p_row.metadata is distinct from p_metadata then
    perform platform.fail('PT409', 'idempotency_key_reused',
      'this idempotency key was already used for a different event');
  end if;
  return platform.usage_result(p_row, true);
end
$$;

-- One event for a known user, whose balance row the caller has locked
-- (platform.lock_balance) and whose balance before this event is p_balance.
-- Writes the ledger row and settles the reservation; the caller applies
-- `debited` and `released` to the balance row, once per call or once per
-- batch (updating one row a thousand times in a transaction would make every
-- update walk a growing chain of row versions). Raises a refusal for invalid
-- input. Not callable through the API.
create or replace function platform.record_usage_row(
  p_user_id uuid,
  p_model text,
  p_prompt_tokens jsonb,
  p_completion_tokens jsonb,
  p_idempotency_key text,
  p_project_id uuid,
  p_session_id uuid,
  p_metadata jsonb,
  p_reservation_id uuid,
  p_api_key_id uuid,
  p_balance bigint,
  out result jsonb,
  out debited bigint,
  out released bigint
)
language plpgsql security definer
set search_path = ''
as $$
declare
  v_prompt bigint := platform.token_count(p_prompt_tokens, 'prompt_tokens');
  v_completion bigint := platform.token_count(p_completion_tokens, 'completion_tokens');
  v_metadata jsonb := coalesce(p_metadata, '{}');
  v_model platform.models;
  v_existing platform.token_usage;
  v_row platform.token_usage;
  v_total bigint;
  v_held bigint;
  v_outcome text;
begin
  debited := 0;
  released := 0;
  if p_idempotency_key is null or length(p_idempotency_key) not between 1 and 255 then
    perform platform.fail('PT422', 'invalid_idempotency_key',
      'an idempotency key of 1 to 255 characters is required');
  end if;
  if jsonb_typeof(v_metadata) <> 'object' or pg_column_size(v_metadata) > 8192 then
    perform platform.fail('PT422', 'invalid_metadata', 'metadata must be a JSON object of at most 8 KiB');
  end if;
  select * into v_model from platform.models m where m.name = p_model and m.is_active;
  if not found then
    perform platform.fail('PT422', 'unknown_model', format('unknown model %L', left(p_model, 128)));
  end if;

  -- A retry: answer what the first call answered, if it asked the same thing.
  -- Every writer of this user's usage holds the balance lock, so a call with
  -- the same key that committed while we waited for it is visible here.
  select * into v_existing from platform.token_usage u
   where u.user_id = p_user_id and u.idempotency_key = p_idempotency_key;
  if found then
    result := platform.usage_replay(v_existing, v_model.id, v_prompt, v_completion, p_project_id,
      p_session_id, v_metadata, p_reservation_id);
    return;
  end if;

  if p_project_id is not null and not exists (
    select 1 from platform.projects p where p.id = p_project_id and p.owner_id = p_user_id
  ) then
    perform platform.fail('PT422', 'unknown_project', 'no such project for this user');
  end if;
  if p_session_id is not null and not exists (
    select 1 from platform.sessions s
     where s.id = p_session_id and s.user_id = p_user_id
       and (p_project_id is null or s.project_id = p_project_id)
  ) then
    perform platform.fail('PT422', 'unknown_session', 'no such session for this user and project');
  end if;

  v_total := v_prompt + v_completion;

  if p_reservation_id is not null then
    -- A hold past its expiry is expired whether or not the sweep has run (as
    -- in reserve_tokens): it goes back to the balance and is not settled.
    update platform.token_reservations r
       set status = case when r.expires_at > now() then 'settled' else 'expired' end, closed_at = now()
     where r.id = p_reservation_id and r.user_id = p_user_id and r.status = 'active'
    returning r.tokens, r.status into v_held, v_outcome;
    if found then
      v_outcome := case when v_outcome = 'settled' then 'settled' else 'not_active' end;
    elsif exists (select 1 from platform.token_reservations r
                   where r.id = p_reservation_id and r.user_id = p_user_id) then
      v_outcome := 'not_active';
    else
      v_outcome := 'not_found';
    end if;
  end if;

  insert into platform.token_usage (
    user_id, api_key_id, project_id, session_id, model_id, prompt_tokens, completion_tokens,
    total_tokens, cost, idempotency_key, reservation_id, reservation_outcome, balance_after, metadata
  ) values (
    p_user_id, p_api_key_id, p_project_id, p_session_id, v_model.id, v_prompt, v_completion,
    v_total, round(v_total * v_model.cost_per_1k_tokens / 1000, 6), p_idempotency_key,
    p_reservation_id, v_outcome, p_balance - v_total, v_metadata
  )
  returning * into v_row;

  if v_outcome = 'settled' then
    update platform.token_reservations r set usage_id = v_row.id where r.id = p_reservation_id;
  end if;

  result := platform.usage_result(v_row, false);
  debited := v_total;
  released := coalesce(v_held, 0);
end
$$;

-- POST /rpc/record_token_usage: records one usage event, idempotently.
-- The service role (the edge, for a verified API key) names p_user_id and
-- p_api_key_id; a signed-in user records for themselves.
create or replace function platform.record_token_usage(
  p_model text,
  p_prompt_tokens bigint,
  p_completion_tokens bigint,
  p_idempotency_key text,
  p_project_id uuid default null,
  p_session_id uuid default null,
  p_metadata jsonb default '{}',
  p_reservation_id uuid default null,
  p_user_id uuid default null,
  p_api_key_id uuid default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, true);
  v_balance platform.token_balances;
  v_recorded record;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  v_balance := platform.lock_balance(v_uid);
  v_recorded := platform.record_usage_row(v_uid, p_model, to_jsonb(p_prompt_tokens),
    to_jsonb(p_completion_tokens), p_idempotency_key, p_project_id, p_session_id, p_metadata,
    p_reservation_id, p_api_key_id, v_balance.balance);
  if v_recorded.debited > 0 or v_recorded.released > 0 then
    update platform.token_balances b
       set used = b.used + v_recorded.debited, reserved = b.reserved - v_recorded.released, updated_at = now()
     where b.user_id = v_uid;
  end if;
  return v_recorded.result;
end
$$;

-- The most events one batch may carry; the edge documents the same number.
create or replace function platform.max_batch_events() returns integer
language sql immutable
set search_path = ''
as $$ select 1000 $$;

-- POST /rpc/record_token_usage_batch: many events in one call, each with its
-- own idempotency key and its own result. One event's refusal rolls back only
-- that event (a subtransaction each); the others are recorded.
--
-- p_events: [{"model", "prompt_tokens", "completion_tokens", "idempotency_key",
--             "project_id"?, "session_id"?, "metadata"?, "reservation_id"?}, ...]
-- Returns {"recorded": n, "replayed": n, "rejected": n, "results": [...]},
-- results in input order, each {"index", "status": "recorded" | "replayed" |
-- "rejected", ...the single-event answer... | "error": {"code", "message"}}.
create or replace function platform.record_token_usage_batch(
  p_events jsonb,
  p_user_id uuid default null,
  p_api_key_id uuid default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, true);
  v_balance bigint;
  v_debited bigint := 0;
  v_released bigint := 0;
  v_recorded record;
  v_event jsonb;
  v_index bigint;
  v_result jsonb;
  -- A plpgsql array grows in place; appending to a jsonb value would copy
  -- the whole result list for every event.
  v_results jsonb[] := '{}';
  v_recorded_count integer := 0;
  v_replayed integer := 0;
  v_rejected integer := 0;
  v_status text;
  v_state text;
  v_message text;
  v_hint text;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  if p_events is null or jsonb_typeof(p_events) <> 'array' or jsonb_array_length(p_events) = 0 then
    perform platform.fail('PT422', 'invalid_batch', 'p_events must be a non-empty JSON array');
  end if;
  if jsonb_array_length(p_events) > platform.max_batch_events() then
    perform platform.fail('PT413', 'batch_too_large',
      format('a batch carries at most %s events', platform.max_batch_events()));
  end if;
  -- One lock and one balance update for the whole batch.
  v_balance := (platform.lock_balance(v_uid)).balance;

  for v_event, v_index in select e, i - 1 from jsonb_array_elements(p_events) with ordinality as t(e, i) loop
    begin
      if jsonb_typeof(v_event) <> 'object' then
        perform platform.fail('PT422', 'invalid_event', 'each event must be a JSON object');
      end if;
      v_recorded := platform.record_usage_row(
        v_uid,
        v_event ->> 'model',
        v_event -> 'prompt_tokens',
        v_event -> 'completion_tokens',
        v_event ->> 'idempotency_key',
        (v_event ->> 'project_id')::uuid,
        (v_event ->> 'session_id')::uuid,
        coalesce(v_event -> 'metadata', '{}'),
        (v_event ->> 'reservation_id')::uuid,
        p_api_key_id,
        v_balance - v_debited
      );
      v_result := v_recorded.result;
      v_debited := v_debited + v_recorded.debited;
      v_released := v_released + v_recorded.released;
      v_status := case when (v_result ->> 'replayed')::boolean then 'replayed' else 'recorded' end;
      v_result := jsonb_build_object('index', v_index, 'status', v_status) || v_result;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
      v_status := 'rejected';
      v_result := jsonb_build_object(
        'index', v_index,
        'status', 'rejected',
        'error', jsonb_build_object(
          'code', case
            when v_state like 'PT%' then v_hint
            when v_state = '22P02' then 'invalid_event'
            else 'event_failed' end,
          'message', case
            when v_state like 'PT%' then v_message
            when v_state = '22P02' then 'an id in this event is not a valid UUID'
            else 'this event could not be recorded' end
        )
      );
      -- Anything but our own refusals and malformed ids is not the caller's
      -- fault: fail the whole call so the edge answers 5xx and the client retries.
      if v_state not like 'PT%' and v_state <> '22P02' then
        raise;
      end if;
    end;
    v_results := array_append(v_results, v_result);
    case v_status
      when 'recorded' then v_recorded_count := v_recorded_count + 1;
      when 'replayed' then v_replayed := v_replayed + 1;
      else v_rejected := v_rejected + 1;
    end case;
  end loop;

  if v_debited > 0 or v_released > 0 then
    update platform.token_balances b
       set used = b.used + v_debited, reserved = b.reserved - v_released, updated_at = now()
     where b.user_id = v_uid;
  end if;
  return jsonb_build_object('recorded', v_recorded_count, 'replayed', v_replayed, 'rejected', v_rejected,
    'results', to_jsonb(v_results));
end
$$;

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

-- POST /rpc/release_token_reservation: gives a hold back early. Releasing a
-- hold that is no longer active answers its status and changes nothing.
create or replace function platform.release_token_reservation(
  p_reservation_id uuid,
  p_user_id uuid default null
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, false);
  v_tokens bigint;
  v_status text;
begin
  perform platform.lock_balance(v_uid);
  update platform.token_reservations r
     set status = 'released', closed_at = now()
   where r.id = p_reservation_id and r.user_id = v_uid and r.status = 'active'
  returning r.tokens into v_tokens;
  if found then
    update platform.token_balances b set reserved = b.reserved - v_tokens, updated_at = now()
     where b.user_id = v_uid;
    return jsonb_build_object('reservation_id', p_reservation_id, 'status', 'released', 'released_tokens', v_tokens);
  end if;
  select r.status into v_status from platform.token_reservations r
   where r.id = p_reservation_id and r.user_id = v_uid;
  if not found then
    perform platform.fail('PT404', 'unknown_reservation', 'no such reservation for this user');
  end if;
  return jsonb_build_object('reservation_id', p_reservation_id, 'status', v_status, 'released_tokens', 0);
end
$$;

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
