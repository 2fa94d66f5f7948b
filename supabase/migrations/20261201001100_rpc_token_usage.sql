-- Recording usage: record_token_usage (one event) and record_token_usage_batch
-- (many, one result each; the usage queue's record_queued_usage records
-- through the same set path, record_usage_events).
--
-- Usage that already happened is never refused for lack of balance: the
-- tokens are spent, and refusing the record would lose it. Enforcement
-- happens before the work, by reservation (authorize, then capture; see
-- reserve_tokens).
--
-- One event is judged by usage_event_plan, without writing, then written by
-- write_usage_rows. Many events are judged and written as one set by
-- record_usage_events: a handful of statements whatever the number of events,
-- no subtransaction and no loop per event. Judging each event of a batch in
-- its own subtransaction, and growing arrays one event at a time, cost more
-- than the writing itself. Both paths apply the same rules, in the same order,
-- with the same codes and messages; pgTAP 206 and 207 hold them to it by
-- sending the same events both ways.

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

-- An event's cost: prompt tokens at the input price, completion tokens at
-- the output price, per 1000 tokens, to the ledger's six decimals. The
-- ledger keeps it, so a later price change never rewrites it. One rule for
-- the single event and both set statements; a plain SQL function, so the
-- statements calling it inline it (no call per event).
create or replace function platform.usage_cost(
  p_prompt_tokens bigint,
  p_completion_tokens bigint,
  p_input_cost_per_1k_tokens numeric,
  p_output_cost_per_1k_tokens numeric
) returns numeric
language sql immutable
as $$
  select round((p_prompt_tokens * p_input_cost_per_1k_tokens
                + p_completion_tokens * p_output_cost_per_1k_tokens) / 1000, 6)
$$;
revoke execute on function platform.usage_cost(bigint, bigint, numeric, numeric)
  from public, anon, authenticated, service_role;

-- Judges one event for a known user, whose balance row the caller has locked
-- and whose balance before this event is p_balance. Writes nothing. Raises a
-- refusal for invalid input. Otherwise answers either the first answer of a
-- retry (replayed), or the ledger row to write (staged: no id or created_at
-- yet), with the tokens its hold gives back and whether the hold is past its
-- expiry (expired, not settled).
--
-- record_usage_events applies these rules to many events at once; a change
-- here is a change there.
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
  select * into v_existing from platform.token_usage u
   where u.user_id = p_user_id and u.idempotency_key = p_idempotency_key;
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
  staged.cost := platform.usage_cost(v_prompt, v_completion, v_model.input_cost_per_1k_tokens,
                                     v_model.output_cost_per_1k_tokens);
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
    p_balance);
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
  platform.usage_event_plan(uuid, text, jsonb, jsonb, text, uuid, uuid, jsonb, uuid, uuid, bigint),
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


-- Whether PostgreSQL's uuid input takes a text that is not a UUID in
-- canonical form (braces, no hyphens, ...). The set path reads canonical ids
-- with a pattern and asks this only of the rare other one: the cast is tried
-- in a subtransaction, which is what the set path otherwise avoids.
create or replace function platform.uuid_parses(p_value text)
returns boolean
language plpgsql immutable
set search_path = ''
as $$
begin
  perform p_value::uuid;
  return true;
exception when invalid_text_representation then
  return false;
end
$$;

-- The first step of record_usage_events, shared by its two statements: each
-- event's fields read and typed, the model it names, and its refusal as
-- usage_event_plan would refuse it before looking for a retry (refusal) or,
-- for an event that is not a retry, for its project or session
-- (reference_refusal: the caller ignores it for a retry). Token counts are
-- null for a refused event. A plain SQL function (not security definer, no
-- settings of its own), so the planner inlines it into the caller's
-- statement: no call per event, and no copy of its rows beyond the caller's.
create or replace function platform.usage_events_shaped(
  p_users uuid[],
  p_api_keys uuid[],
  p_events jsonb[],
  p_max_metadata integer
) returns table (
  i bigint,
  user_id uuid,
  api_key_id uuid,
  key text,
  metadata jsonb,
  model_id bigint,
  model text,
  input_cost_per_1k_tokens numeric,
  output_cost_per_1k_tokens numeric,
  project_id uuid,
  session_id uuid,
  reservation_id uuid,
  prompt_tokens bigint,
  completion_tokens bigint,
  refusal jsonb,
  reference_refusal jsonb
)
language sql stable
as $$
  -- Materialized steps: inlined, each use of a column repeats the expression
  -- behind it (the refusal's CASE would run once per later mention).
  with event as materialized (
    -- The fields as the single-event path reads them; a malformed id makes
    -- ids_ok false instead of failing a cast.
    select t.i, t.user_id, t.api_key_id,
           coalesce(jsonb_typeof(t.e) = 'object', false) as is_object,
           t.e ->> 'idempotency_key' as key,
           t.e ->> 'model' as model_name,
           case when jsonb_typeof(t.e -> 'prompt_tokens') = 'number'
                then (t.e -> 'prompt_tokens')::numeric end as prompt,
           case when jsonb_typeof(t.e -> 'completion_tokens') = 'number'
                then (t.e -> 'completion_tokens')::numeric end as completion,
           coalesce(t.e -> 'metadata', '{}') as metadata,
           t.e ->> 'project_id' as project_text,
           t.e ->> 'session_id' as session_text,
           t.e ->> 'reservation_id' as reservation_text,
           (case when t.e ->> 'project_id' is null
                   or t.e ->> 'project_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                 then true else platform.uuid_parses(t.e ->> 'project_id') end)
           and (case when t.e ->> 'session_id' is null
                   or t.e ->> 'session_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                 then true else platform.uuid_parses(t.e ->> 'session_id') end)
           and (case when t.e ->> 'reservation_id' is null
                   or t.e ->> 'reservation_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                 then true else platform.uuid_parses(t.e ->> 'reservation_id') end) as ids_ok
      from unnest(p_users, p_api_keys, p_events) with ordinality t(user_id, api_key_id, e, i)
  ), shaped as materialized (
    -- What usage_event_plan refuses before looking for a retry, in its order
    -- (the ids first: the single-event path takes them as typed arguments).
    select e.i, e.user_id, e.api_key_id, e.key, e.metadata, m.id as model_id, m.name as model,
           m.input_cost_per_1k_tokens, m.output_cost_per_1k_tokens,
           case when e.ids_ok then e.project_text::uuid end as project_id,
           case when e.ids_ok then e.session_text::uuid end as session_id,
           case when e.ids_ok then e.reservation_text::uuid end as reservation_id,
           case
             when not e.is_object then
               jsonb_build_object('code', 'invalid_event', 'message', 'each event must be a JSON object')
             when not e.ids_ok then
               jsonb_build_object('code', 'invalid_event', 'message', 'an id in this event is not a valid UUID')
             when e.prompt is null then
               jsonb_build_object('code', 'invalid_token_count', 'message', 'prompt_tokens must be a whole number')
             when e.prompt <> trunc(e.prompt) or e.prompt < 0 or e.prompt > 1000000000000 then
               jsonb_build_object('code', 'invalid_token_count',
                 'message', 'prompt_tokens must be a whole number from 0 to 1000000000000')
             when e.completion is null then
               jsonb_build_object('code', 'invalid_token_count', 'message', 'completion_tokens must be a whole number')
             when e.completion <> trunc(e.completion) or e.completion < 0 or e.completion > 1000000000000 then
               jsonb_build_object('code', 'invalid_token_count',
                 'message', 'completion_tokens must be a whole number from 0 to 1000000000000')
             when e.key is null or length(e.key) not between 1 and 255 then
               jsonb_build_object('code', 'invalid_idempotency_key',
                 'message', 'an idempotency key of 1 to 255 characters is required')
             when jsonb_typeof(e.metadata) <> 'object' or octet_length(e.metadata::text) > p_max_metadata then
               jsonb_build_object('code', 'invalid_metadata',
                 'message', format('metadata must be a JSON object of at most %s bytes as JSON text', p_max_metadata))
             when e.prompt + e.completion = 0 then
               jsonb_build_object('code', 'invalid_token_count',
                 'message', 'prompt_tokens + completion_tokens must be at least 1')
             when m.id is null then
               jsonb_build_object('code', 'unknown_model', 'message', format('unknown model %L', left(e.model_name, 128)))
           end as refusal,
           e.prompt, e.completion
      from event e
      left join platform.models m on m.name = e.model_name and m.is_active
  )
  select s.i, s.user_id, s.api_key_id, s.key, s.metadata, s.model_id, s.model,
         s.input_cost_per_1k_tokens, s.output_cost_per_1k_tokens, s.project_id, s.session_id,
         s.reservation_id,
         case when s.refusal is null then s.prompt::bigint end,
         case when s.refusal is null then s.completion::bigint end,
         s.refusal,
         case when s.refusal is null then
           case
             when s.project_id is not null and not exists (
               select 1 from platform.projects p where p.id = s.project_id and p.owner_id = s.user_id)
             then jsonb_build_object('code', 'unknown_project', 'message', 'no such project for this user')
             when s.session_id is not null and not exists (
               select 1 from platform.sessions ss
                where ss.id = s.session_id and ss.user_id = s.user_id
                  and (s.project_id is null or ss.project_id = s.project_id))
             then jsonb_build_object('code', 'unknown_session',
                                     'message', 'no such session for this user and project')
           end
         end
    from shaped s
$$;

-- Records many events as one set: the k-th event p_events[k] for the user
-- p_users[k] with the API key p_api_keys[k], callers having checked both
-- (caller_user_id, check_api_key_owner). Returns, per event in order, its
-- status ("recorded" | "replayed" | "rejected") and its answer as json:
-- {"index": k - 1, "status", ...usage_result...} or {"index", "status":
-- "rejected", "error": {"code", "message"}}; with p_compact, without
-- "index", and a recorded or replayed event answers only {"status",
-- "usage_id"} (the queue's consumer reads no more, and building, sending and
-- parsing the rest is most of an answer's cost). Every event is judged
-- as usage_event_plan judges it, in input order per user, as if the earlier
-- ones had been recorded: a key seen earlier in the set is a retry of that
-- event, a hold already settled by an earlier event is no longer active,
-- and each row's balance is the balance after the earlier ones. Raises only
-- for what is not the caller's fault (the database failing).
--
-- The balance rows are locked first, in user id order (two calls sharing
-- users queue instead of deadlocking). Then one statement judges and writes:
-- one INSERT of the new ledger rows (whose statement trigger appends the
-- daily summary's deltas once per day, user and model), one UPDATE settling
-- holds, one expiring holds, one UPDATE of each balance row touched. It is
-- the common case's statement when every event is new and names no hold,
-- else the general one, which also probes the ledger for retries and pairs
-- events repeating a key in the set.
create or replace function platform.record_usage_events(
  p_users uuid[],
  p_api_keys uuid[],
  p_events jsonb[],
  p_compact boolean,
  out statuses text[],
  out answers json[]
)
language plpgsql security definer
set search_path = ''
-- Planned once per session: PL/pgSQL would otherwise plan this statement
-- afresh for each of a session's first five calls, folding thousands of
-- events into the plan as constants.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_max_metadata integer := platform.max_metadata_bytes();
  v_settling bigint;
  v_settled bigint;
  v_general boolean;
  v_constraint text;
begin
  insert into platform.token_balances (user_id)
  select distinct u.id from unnest(p_users) u(id) order by u.id
  on conflict (user_id) do nothing;
  perform 1 from platform.token_balances b where b.user_id = any(p_users) order by b.user_id for update;

  -- The common case first: every event new to the ledger and to the set,
  -- none naming a hold. Then no event needs the ledger probe, the search for
  -- an earlier event with its key, or the hold's bookkeeping, and the
  -- answers are built from what is written instead of read back from it.
  -- The ledger's unique key (user, idempotency key) is the judge: the one
  -- INSERT raises unique_violation at the first event that is a retry or
  -- repeats a key of the set, this block's subtransaction undoes what it
  -- wrote, and the general statement below judges the set. A retried set
  -- pays for the rows written before its first known key. A set naming a
  -- hold, or with an event refused for its project or session (which might
  -- be a retry, and then replays), writes nothing here (verdict) and goes
  -- the general way.
  begin
    with planned as materialized (
      -- Ids taken from the ledger's own sequence in (user, event) order, as
      -- the INSERT would number them, so each answer is known before the
      -- row is written; created_at is now(), as the ledger's default.
      select s.i, s.user_id, s.api_key_id, s.key, s.metadata, s.model_id, s.model, s.project_id,
             s.session_id, s.reservation_id, s.prompt_tokens, s.completion_tokens, s.refusal,
             s.reference_refusal,
             platform.usage_cost(s.prompt_tokens, s.completion_tokens, s.input_cost_per_1k_tokens,
                                 s.output_cost_per_1k_tokens)::numeric(20, 6) as cost,
             b.balance - sum(s.prompt_tokens + s.completion_tokens)
                           over (partition by s.user_id order by s.i) as balance_after,
             case when s.refusal is null then nextval('platform.token_usage_id_seq'::regclass) end as id
        from platform.usage_events_shaped(p_users, p_api_keys, p_events, v_max_metadata) s
        join platform.token_balances b on b.user_id = s.user_id
       order by s.user_id, s.i
    ), verdict as (
      select coalesce(bool_or(p.reference_refusal is not null or p.reservation_id is not null), false) as general
        from planned p
    ), written as (
      insert into platform.token_usage (
        id, user_id, api_key_id, project_id, session_id, model_id, prompt_tokens, completion_tokens,
        total_tokens, cost, idempotency_key, balance_after, metadata
      ) overriding system value
      select p.id, p.user_id, p.api_key_id, p.project_id, p.session_id, p.model_id, p.prompt_tokens,
             p.completion_tokens, p.prompt_tokens + p.completion_tokens, p.cost, p.key, p.balance_after,
             p.metadata
        from planned p
       where p.refusal is null and not (select v.general from verdict v)
       order by p.id
    ), debited as (
      update platform.token_balances b
         set used = b.used + t.debited, updated_at = now()
        from (select p.user_id, sum(p.prompt_tokens + p.completion_tokens) as debited
                from planned p where p.refusal is null group by p.user_id) t
       where b.user_id = t.user_id and not (select v.general from verdict v)
    )
    -- As the general statement's answers (the same keys in the same order).
    select array_agg(case when p.refusal is null then 'recorded' else 'rejected' end order by p.i),
           array_agg(
             case when p.refusal is not null then
               case when p_compact then json_build_object('status', 'rejected', 'error', p.refusal)
               else json_build_object('index', p.i - 1, 'status', 'rejected', 'error', p.refusal) end
             when p_compact then row_to_json(compact)
             else row_to_json(answer)
             end order by p.i),
           (select v.general from verdict v)
      into statuses, answers, v_general
      from planned p
      cross join lateral (select 'recorded' as status, p.id as usage_id) compact
      cross join lateral (
        select p.i - 1 as "index",
               'recorded' as status,
               p.id as usage_id,
               p.model,
               p.prompt_tokens,
               p.completion_tokens,
               p.prompt_tokens + p.completion_tokens as total_tokens,
               p.cost,
               p.balance_after as balance,
               p.balance_after <= 0 as exhausted,
               false as replayed,
               null::json as reservation,
               now() as created_at
      ) answer;
    if not v_general then
      return;
    end if;
  exception when unique_violation then
    get stacked diagnostics v_constraint = constraint_name;
    if v_constraint is distinct from 'token_usage_idempotent' then
      raise;
    end if;
  end;

  with judged as materialized (
    -- The ledger row of a retry (every writer of a user's usage holds the
    -- balance lock, taken above, so a row committed meanwhile is seen); the
    -- project and session checks count only for an event that is not one.
    -- first_i is the event that records a key new to the ledger: the first
    -- of its events that passes every check.
    select s.i, s.user_id, s.api_key_id, s.key, s.metadata, s.model_id, s.input_cost_per_1k_tokens,
           s.output_cost_per_1k_tokens, s.project_id, s.session_id, s.reservation_id, s.prompt_tokens,
           s.completion_tokens, s.refusal, l.ledger,
           case when (l.ledger).id is null then s.reference_refusal end as reference_refusal
      from platform.usage_events_shaped(p_users, p_api_keys, p_events, v_max_metadata) s
      -- One index probe per event, whatever the ledger's size. OFFSET 0
      -- keeps the subquery whole: pulled up, its scalar subplan ran once for
      -- each mention of ledger, twice per event.
      cross join lateral (
        select (select u from platform.token_usage u
                 where u.user_id = s.user_id and u.idempotency_key = s.key) as ledger
        offset 0
      ) l
  ), firsts as (
    select j.*,
           min(j.i) filter (where j.refusal is null and (j.ledger).id is null and j.reference_refusal is null)
             over (partition by j.user_id, j.key collate "C") as first_i
      from judged j
  ), decided as (
    -- A retry answers its first answer when it asks the same thing
    -- (usage_replay's comparison), else is refused.
    select f.i, f.user_id, f.api_key_id, f.key, f.ledger, f.model_id, f.prompt_tokens, f.completion_tokens,
           f.project_id, f.session_id, f.reservation_id, f.metadata, f.input_cost_per_1k_tokens,
           f.output_cost_per_1k_tokens,
           case
             when f.refusal is not null then 'rejected'
             when r.model_id is null then
               case when f.first_i is null or f.i < f.first_i then 'rejected' else 'recorded' end
             when (r.model_id, r.prompt_tokens, r.completion_tokens)
                    is distinct from (f.model_id, f.prompt_tokens, f.completion_tokens)
                  or (r.project_id, r.session_id, r.reservation_id)
                    is distinct from (f.project_id, f.session_id, f.reservation_id)
                  or r.metadata is distinct from f.metadata then 'rejected'
             else 'replayed'
           end as status,
           case
             when f.refusal is not null then f.refusal
             when r.model_id is null then f.reference_refusal
             else jsonb_build_object('code', 'idempotency_key_reused',
                    'message', 'this idempotency key was already used for a different event')
           end as refusal
      from firsts f
      -- What a retry is compared with: the ledger row, or the event that
      -- records the key earlier in this set.
      left join lateral (
        select (f.ledger).model_id, (f.ledger).prompt_tokens, (f.ledger).completion_tokens,
               (f.ledger).project_id, (f.ledger).session_id, (f.ledger).reservation_id, (f.ledger).metadata
         where (f.ledger).id is not null and f.refusal is null
        union all
        select o.model_id, o.prompt_tokens, o.completion_tokens, o.project_id, o.session_id,
               o.reservation_id, o.metadata
          from judged o
         where (f.ledger).id is null and f.refusal is null and f.i > f.first_i
           and o.user_id = f.user_id and o.key = f.key and o.i = f.first_i
      ) r on true
  ), staged as (
    -- The rows to write: each user's balance after each of them, in order,
    -- and what each does to the hold it names (the first to name an active
    -- hold settles it, or expires it when past its expiry; the later ones
    -- find it no longer active).
    select d.*, b.balance - sum(d.prompt_tokens + d.completion_tokens)
                  over (partition by d.user_id order by d.i) as balance_after,
           h.id as hold_id, h.status as hold_status, h.tokens as hold_tokens, h.expires_at as hold_expires_at,
           row_number() over (partition by d.user_id, d.reservation_id order by d.i) as hold_use
      from decided d
      join platform.token_balances b on b.user_id = d.user_id
      left join platform.token_reservations h on h.id = d.reservation_id and h.user_id = d.user_id
     where d.status = 'recorded'
  ), planned as (
    select s.*,
           case
             when s.reservation_id is null then null
             when s.hold_id is null then 'not_found'
             when s.hold_status <> 'active' or s.hold_use > 1 or s.hold_expires_at <= now() then 'not_active'
             else 'settled'
           end as reservation_outcome,
           case when s.hold_status = 'active' and s.hold_use = 1 then s.hold_tokens else 0 end as released,
           coalesce(s.hold_status = 'active' and s.hold_use = 1 and s.hold_expires_at <= now(), false) as expire_hold
      from staged s
  ), written as (
    insert into platform.token_usage (
      user_id, api_key_id, project_id, session_id, model_id, prompt_tokens, completion_tokens,
      total_tokens, cost, idempotency_key, reservation_id, reservation_outcome, balance_after, metadata
    )
    select p.user_id, p.api_key_id, p.project_id, p.session_id, p.model_id, p.prompt_tokens,
           p.completion_tokens, p.prompt_tokens + p.completion_tokens,
           platform.usage_cost(p.prompt_tokens, p.completion_tokens, p.input_cost_per_1k_tokens,
                               p.output_cost_per_1k_tokens),
           p.key, p.reservation_id, p.reservation_outcome, p.balance_after, p.metadata
      from planned p
     order by p.user_id, p.i
    returning *
  ), settled as (
    update platform.token_reservations r
       set status = 'settled', closed_at = now(), usage_id = w.id
      from written w
     where w.reservation_outcome = 'settled' and r.id = w.reservation_id
       and r.user_id = w.user_id and r.status = 'active'
    returning r.id
  ), expired as (
    update platform.token_reservations r
       set status = 'expired', closed_at = now()
      from planned p
     where p.expire_hold and r.id = p.reservation_id and r.user_id = p.user_id and r.status = 'active'
    returning r.id
  ), debited as (
    update platform.token_balances b
       set used = b.used + t.debited, reserved = b.reserved - t.released, updated_at = now()
      from (select p.user_id, sum(p.prompt_tokens + p.completion_tokens) as debited,
                   sum(p.released) as released
              from planned p group by p.user_id) t
     where b.user_id = t.user_id
    returning b.user_id
  )
  -- The answers are usage_result's, built here from the written or ledger
  -- row (a function call per event costs more than the rest of its answer),
  -- as json: text written once, where jsonb would be built as a tree, its
  -- keys sorted, and turned back into the same text for the client. Each is
  -- row_to_json of a row (the lateral subqueries, whose column names become
  -- the keys): json_build_object looks up how to print each of its arguments
  -- anew for every event, which made it twice as slow.
  select array_agg(d.status order by d.i),
         array_agg(
           case when d.status = 'rejected' then
             case when p_compact then json_build_object('status', 'rejected', 'error', d.refusal)
             else json_build_object('index', d.i - 1, 'status', 'rejected', 'error', d.refusal) end
           when p_compact then row_to_json(compact)
           else row_to_json(answer)
           end order by d.i),
         (select count(*) from planned p where p.reservation_outcome = 'settled'),
         (select count(*) from settled)
    into statuses, answers, v_settling, v_settled
    from decided d
    left join written w on w.user_id = d.user_id and w.idempotency_key = d.key and d.status <> 'rejected'
    left join platform.models m on m.id = coalesce(w.model_id, (d.ledger).model_id)
    cross join lateral (select d.status, coalesce(w.id, (d.ledger).id) as usage_id) compact
    cross join lateral (
      select d.i - 1 as "index",
             d.status,
             coalesce(w.id, (d.ledger).id) as usage_id,
             m.name as model,
             coalesce(w.prompt_tokens, (d.ledger).prompt_tokens) as prompt_tokens,
             coalesce(w.completion_tokens, (d.ledger).completion_tokens) as completion_tokens,
             coalesce(w.total_tokens, (d.ledger).total_tokens) as total_tokens,
             coalesce(w.cost, (d.ledger).cost) as cost,
             coalesce(w.balance_after, (d.ledger).balance_after) as balance,
             coalesce(w.balance_after, (d.ledger).balance_after) <= 0 as exhausted,
             d.status = 'replayed' as replayed,
             case when coalesce(w.reservation_id, (d.ledger).reservation_id) is null then null
               else json_build_object('id', coalesce(w.reservation_id, (d.ledger).reservation_id),
                                      'outcome', coalesce(w.reservation_outcome, (d.ledger).reservation_outcome))
             end as reservation,
             coalesce(w.created_at, (d.ledger).created_at) as created_at
    ) answer;

  -- Every writer of a user's holds takes the balance lock first, so a hold
  -- judged active is still active; if not, retry rather than count wrong.
  if v_settled <> v_settling then
    raise exception using errcode = '40001',
      message = 'a reservation changed while its usage was being recorded';
  end if;
end
$$;
revoke execute on function
  platform.uuid_parses(text),
  platform.usage_events_shaped(uuid[], uuid[], jsonb[], integer),
  platform.record_usage_events(uuid[], uuid[], jsonb[], boolean)
  from public, anon, authenticated, service_role;

-- POST /rpc/record_token_usage_batch: many events in one call, each with its
-- own idempotency key and its own result. One event's refusal rejects only
-- that event; the others are recorded (record_usage_events).
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
) returns json
language plpgsql security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, true);
  v_count integer;
  v_recorded record;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  if p_events is null or jsonb_typeof(p_events) <> 'array' or jsonb_array_length(p_events) = 0 then
    perform platform.fail('PT422', 'invalid_batch', 'p_events must be a non-empty JSON array');
  end if;
  v_count := jsonb_array_length(p_events);
  if v_count > platform.max_batch_events() then
    perform platform.fail('PT413', 'batch_too_large',
      format('a batch carries at most %s events', platform.max_batch_events()));
  end if;
  v_recorded := platform.record_usage_events(
    array_fill(v_uid, array[v_count]),
    array_fill(p_api_key_id, array[v_count]),
    array(select t.e from jsonb_array_elements(p_events) with ordinality t(e, i) order by t.i),
    false);
  -- json, as the answers: PostgREST sends the text as it is.
  return json_build_object(
      'recorded', (select count(*) from unnest(v_recorded.statuses) s where s = 'recorded'),
      'replayed', (select count(*) from unnest(v_recorded.statuses) s where s = 'replayed'),
      'rejected', (select count(*) from unnest(v_recorded.statuses) s where s = 'rejected'),
      'results', array_to_json(v_recorded.answers));
end
$$;
revoke execute on function platform.record_token_usage_batch(jsonb, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.record_token_usage_batch(jsonb, uuid, uuid) to authenticated, service_role;
