-- Recording usage: record_token_usage (one event) and record_token_usage_batch
-- (many, one result each).
--
-- Usage that already happened is never refused for lack of balance: the
-- tokens are spent, and refusing the record would lose it. Enforcement
-- happens before the work, by reservation (authorize, then capture; see
-- reserve_tokens).
--
-- Every event is judged first, without writing (usage_event_plan), then
-- written (write_usage_rows): a batch writes all its new rows with one INSERT,
-- settles their holds with one UPDATE and updates the balance once. Recording
-- each event of a batch in its own writing subtransaction would cost a write
-- and an XID per event (past 64 of them every snapshot in the cluster has to
-- consult pg_subtrans) and fire the ledger's summary trigger once per event;
-- a subtransaction that writes nothing, as judging one event is, is cheap.
-- The single-event path uses the same two functions, so one event and a
-- batch of one cannot differ.

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

-- Judges one event for a known user, whose balance row the caller has locked
-- and whose balance before this event is p_balance. Writes nothing. Raises a
-- refusal for invalid input. Otherwise answers either the first answer of a
-- retry (replayed), or the ledger row to write (staged: no id or created_at
-- yet), with the tokens its hold gives back and whether the hold is past its
-- expiry (expired, not settled).
--
-- p_pending is a row staged earlier in the same batch under the same key: the
-- event is then judged as a retry of it, as it would be once it is written.
create or replace function platform.usage_event_plan(
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
  p_pending platform.token_usage,
  out replayed jsonb,
  out staged platform.token_usage,
  out held bigint,
  out expire_hold boolean
)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_prompt bigint := platform.token_count(p_prompt_tokens, 'prompt_tokens');
  v_completion bigint := platform.token_count(p_completion_tokens, 'completion_tokens');
  v_metadata jsonb := coalesce(p_metadata, '{}');
  v_model platform.models;
  v_existing platform.token_usage;
  v_hold platform.token_reservations;
  v_total bigint;
begin
  held := 0;
  expire_hold := false;
  if p_idempotency_key is null or length(p_idempotency_key) not between 1 and 255 then
    perform platform.fail('PT422', 'invalid_idempotency_key',
      'an idempotency key of 1 to 255 characters is required');
  end if;
  if jsonb_typeof(v_metadata) <> 'object' or octet_length(v_metadata::text) > platform.max_metadata_bytes() then
    perform platform.fail('PT422', 'invalid_metadata',
      format('metadata must be a JSON object of at most %s bytes as JSON text', platform.max_metadata_bytes()));
  end if;
  -- An event that used no tokens records nothing worth a ledger row.
  if v_prompt + v_completion = 0 then
    perform platform.fail('PT422', 'invalid_token_count', 'prompt_tokens + completion_tokens must be at least 1');
  end if;
  select * into v_model from platform.models m where m.name = p_model and m.is_active;
  if not found then
    perform platform.fail('PT422', 'unknown_model', format('unknown model %L', left(p_model, 128)));
  end if;

  -- A retry: answer what the first call answered, if it asked the same thing.
  -- Every writer of this user's usage holds the balance lock, so a call with
  -- the same key that committed while we waited for it is visible here.
  if p_pending.idempotency_key is not null then
    v_existing := p_pending;
  else
    select * into v_existing from platform.token_usage u
     where u.user_id = p_user_id and u.idempotency_key = p_idempotency_key;
  end if;
  if v_existing.idempotency_key is not null then
    replayed := platform.usage_replay(v_existing, v_model.id, v_prompt, v_completion, p_project_id,
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
  staged.user_id := p_user_id;
  staged.api_key_id := p_api_key_id;
  staged.project_id := p_project_id;
  staged.session_id := p_session_id;
  staged.model_id := v_model.id;
  staged.prompt_tokens := v_prompt;
  staged.completion_tokens := v_completion;
  staged.total_tokens := v_total;
  -- Prompt tokens at the input price, completion tokens at the output price;
  -- the ledger keeps this cost, so a later price change never rewrites it.
  staged.cost := round((v_prompt * v_model.input_cost_per_1k_tokens
                        + v_completion * v_model.output_cost_per_1k_tokens) / 1000, 6);
  staged.idempotency_key := p_idempotency_key;
  staged.reservation_id := p_reservation_id;
  staged.balance_after := p_balance - v_total;
  staged.metadata := v_metadata;

  if p_reservation_id is not null then
    -- A hold past its expiry is expired whether or not the sweep has run (as
    -- in reserve_tokens): it goes back to the balance and is not settled.
    select * into v_hold from platform.token_reservations r
     where r.id = p_reservation_id and r.user_id = p_user_id;
    if not found then
      staged.reservation_outcome := 'not_found';
    elsif v_hold.status <> 'active' then
      staged.reservation_outcome := 'not_active';
    else
      held := v_hold.tokens;
      expire_hold := v_hold.expires_at <= now();
      staged.reservation_outcome := case when expire_hold then 'not_active' else 'settled' end;
    end if;
  end if;
end
$$;

-- Writes rows staged by usage_event_plan for one user, in order, with one
-- INSERT; settles the holds of those with outcome 'settled' and expires
-- p_expired_holds, with one UPDATE each. Returns the written rows in order.
-- The caller holds the balance lock and applies the balance change.
create or replace function platform.write_usage_rows(
  p_user_id uuid,
  p_rows platform.token_usage[],
  p_expired_holds uuid[]
) returns platform.token_usage[]
language plpgsql security definer
set search_path = ''
as $$
declare
  v_written platform.token_usage[];
  v_settling integer;
  v_changed integer;
begin
  with written as (
    insert into platform.token_usage (
      user_id, api_key_id, project_id, session_id, model_id, prompt_tokens, completion_tokens,
      total_tokens, cost, idempotency_key, reservation_id, reservation_outcome, balance_after, metadata
    )
    select r.user_id, r.api_key_id, r.project_id, r.session_id, r.model_id, r.prompt_tokens,
           r.completion_tokens, r.total_tokens, r.cost, r.idempotency_key, r.reservation_id,
           r.reservation_outcome, r.balance_after, r.metadata
      from unnest(p_rows) with ordinality as r
     order by r.ordinality
    returning *
  )
  select array_agg(row(w.*)::platform.token_usage order by w.id) into v_written from written w;

  select count(*) into v_settling from unnest(v_written) w where w.reservation_outcome = 'settled';
  if v_settling > 0 then
    update platform.token_reservations r
       set status = 'settled', closed_at = now(), usage_id = w.id
      from unnest(v_written) w
     where w.reservation_outcome = 'settled' and r.id = w.reservation_id
       and r.user_id = p_user_id and r.status = 'active';
    get diagnostics v_changed = row_count;
    -- Every writer of a user's holds takes the balance lock first, so a hold
    -- judged active is still active; if not, retry rather than count wrong.
    if v_changed <> v_settling then
      raise exception using errcode = '40001',
        message = 'a reservation changed while its usage was being recorded';
    end if;
  end if;
  if cardinality(p_expired_holds) > 0 then
    update platform.token_reservations r
       set status = 'expired', closed_at = now()
     where r.id = any(p_expired_holds) and r.user_id = p_user_id and r.status = 'active';
  end if;
  return coalesce(v_written, '{}');
end
$$;

-- One event for a known user (the single-event path), whose balance row the
-- caller has locked (platform.lock_balance) and whose balance before this
-- event is p_balance: judged and written as a batch of one. The caller
-- applies `debited` and `released` to the balance row. Raises a refusal for
-- invalid input.
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
  v_plan record;
  v_written platform.token_usage[];
begin
  debited := 0;
  released := 0;
  v_plan := platform.usage_event_plan(p_user_id, p_model, p_prompt_tokens, p_completion_tokens,
    p_idempotency_key, p_project_id, p_session_id, p_metadata, p_reservation_id, p_api_key_id,
    p_balance, null);
  if v_plan.replayed is not null then
    result := v_plan.replayed;
    return;
  end if;
  v_written := platform.write_usage_rows(p_user_id, array[v_plan.staged],
    case when v_plan.expire_hold then array[p_reservation_id] else '{}'::uuid[] end);
  result := platform.usage_result(v_written[1], false);
  debited := v_written[1].total_tokens;
  released := v_plan.held;
end
$$;

-- Internal helpers: called only by the RPCs (security definer), never through
-- the API.
revoke execute on function
  platform.usage_result(platform.token_usage, boolean),
  platform.usage_replay(platform.token_usage, bigint, bigint, bigint, uuid, uuid, jsonb, uuid),
  platform.usage_event_plan(uuid, text, jsonb, jsonb, text, uuid, uuid, jsonb, uuid, uuid, bigint, platform.token_usage),
  platform.write_usage_rows(uuid, platform.token_usage[], uuid[]),
  platform.record_usage_row(uuid, text, jsonb, jsonb, text, uuid, uuid, jsonb, uuid, uuid, bigint)
  from public, anon, authenticated, service_role;

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
revoke execute on function
  platform.record_token_usage(text, bigint, bigint, text, uuid, uuid, jsonb, uuid, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function
  platform.record_token_usage(text, bigint, bigint, text, uuid, uuid, jsonb, uuid, uuid, uuid)
  to authenticated, service_role;

-- The most events one batch may carry; the edge documents the same number.
create or replace function platform.max_batch_events() returns integer
language sql immutable
set search_path = ''
as $$ select 1000 $$;
revoke execute on function platform.max_batch_events() from public, anon, authenticated, service_role;

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
  v_event jsonb;
  v_index bigint;
  v_key text;
  v_plan record;
  v_hold uuid;
  -- Per event, in input order: its answer, or (for a row still to be written)
  -- null with v_row_of pointing at its staged row.
  v_results jsonb[] := '{}';
  v_row_of integer[] := '{}';
  v_replay_of_row boolean[] := '{}';
  v_staged platform.token_usage[] := '{}';
  v_written platform.token_usage[];
  -- For each event, the previous event with the same key (1-based), found
  -- by one window query instead of a search per event; and holds already used.
  v_previous integer[];
  v_earlier integer;
  v_pending_at integer;
  v_used_holds uuid[] := '{}';
  v_expired_holds uuid[] := '{}';
  v_pending platform.token_usage;
  v_row platform.token_usage;
  v_state text;
  v_message text;
  v_hint text;
  v_result jsonb;
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

  select array_agg(x.previous order by x.i) into v_previous
    from (select t.i, lag(t.i) over (partition by t.e ->> 'idempotency_key' order by t.i) as previous
            from jsonb_array_elements(p_events) with ordinality as t(e, i)) x;

  -- Judge every event; nothing is written yet.
  for v_event, v_index in select e, i - 1 from jsonb_array_elements(p_events) with ordinality as t(e, i) loop
    v_result := null;
    v_plan := null;
    begin
      if jsonb_typeof(v_event) <> 'object' then
        perform platform.fail('PT422', 'invalid_event', 'each event must be a JSON object');
      end if;
      v_key := v_event ->> 'idempotency_key';
      -- The row staged for this key by an earlier event, if any (events
      -- rejected or replayed from the ledger staged none).
      v_pending := null;
      v_pending_at := null;
      if v_key is not null then
        v_earlier := v_previous[v_index + 1];
        while v_earlier is not null and v_row_of[v_earlier] is null loop
          v_earlier := v_previous[v_earlier];
        end loop;
        if v_earlier is not null then
          v_pending_at := v_row_of[v_earlier];
          v_pending := v_staged[v_pending_at];
        end if;
      end if;
      v_plan := platform.usage_event_plan(
        v_uid,
        v_event ->> 'model',
        v_event -> 'prompt_tokens',
        v_event -> 'completion_tokens',
        v_key,
        (v_event ->> 'project_id')::uuid,
        (v_event ->> 'session_id')::uuid,
        coalesce(v_event -> 'metadata', '{}'),
        (v_event ->> 'reservation_id')::uuid,
        p_api_key_id,
        v_balance - v_debited,
        v_pending
      );
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
      -- Anything but our own refusals and malformed ids is not the caller's
      -- fault: fail the whole call so the edge answers 5xx and the client retries.
      if v_state not like 'PT%' and v_state <> '22P02' then
        raise;
      end if;
      v_result := jsonb_build_object(
        'index', v_index,
        'status', 'rejected',
        'error', jsonb_build_object(
          'code', case when v_state like 'PT%' then v_hint else 'invalid_event' end,
          'message', case when v_state like 'PT%' then v_message
                          else 'an id in this event is not a valid UUID' end));
    end;

    if v_result is not null then
      v_row_of := v_row_of || null::integer;
      v_replay_of_row := v_replay_of_row || false;
    elsif v_pending.idempotency_key is not null then
      -- A retry of an event staged earlier in this batch: its answer once written.
      v_row_of := v_row_of || v_pending_at;
      v_replay_of_row := v_replay_of_row || true;
    elsif v_plan.replayed is not null then
      v_result := jsonb_build_object('index', v_index, 'status', 'replayed') || v_plan.replayed;
      v_row_of := v_row_of || null::integer;
      v_replay_of_row := v_replay_of_row || false;
    else
      -- A hold settled by an earlier event of this batch is no longer active.
      v_row := v_plan.staged;
      v_hold := v_row.reservation_id;
      if v_hold is not null and v_hold = any(v_used_holds) then
        v_row.reservation_outcome := 'not_active';
      elsif v_plan.held > 0 then
        v_used_holds := v_used_holds || v_hold;
        v_released := v_released + v_plan.held;
        if v_plan.expire_hold then
          v_expired_holds := v_expired_holds || v_hold;
        end if;
      end if;
      v_staged := v_staged || v_row;
      v_debited := v_debited + v_row.total_tokens;
      v_row_of := v_row_of || cardinality(v_staged);
      v_replay_of_row := v_replay_of_row || false;
    end if;
    v_results := v_results || v_result;
  end loop;

  -- Write every new row at once, then answer each event, in one statement:
  -- subscripting an array of rows walks it from the start every time.
  if cardinality(v_staged) > 0 then
    v_written := platform.write_usage_rows(v_uid, v_staged, v_expired_holds);
    select array_agg(coalesce(e.answer,
             jsonb_build_object('index', e.i - 1, 'status', case when e.rep then 'replayed' else 'recorded' end)
             || platform.usage_result(w.written_row, e.rep)) order by e.i)
      into v_results
      from unnest(v_results, v_row_of, v_replay_of_row) with ordinality as e(answer, row_of, rep, i)
      left join (select t as written_row, row_number() over (order by (t).id) as n
                   from unnest(v_written) t) w on w.n = e.row_of;
  end if;

  if v_debited > 0 or v_released > 0 then
    update platform.token_balances b
       set used = b.used + v_debited, reserved = b.reserved - v_released, updated_at = now()
     where b.user_id = v_uid;
  end if;
  return (select jsonb_build_object(
      'recorded', count(*) filter (where r ->> 'status' = 'recorded'),
      'replayed', count(*) filter (where r ->> 'status' = 'replayed'),
      'rejected', count(*) filter (where r ->> 'status' = 'rejected'),
      'results', to_jsonb(v_results))
    from unnest(v_results) r);
end
$$;
revoke execute on function platform.record_token_usage_batch(jsonb, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.record_token_usage_batch(jsonb, uuid, uuid) to authenticated, service_role;
