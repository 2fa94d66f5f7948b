-- High-volume usage through Cloudflare Queues: the edge accepts events with
-- `Prefer: respond-async`, enqueues them, and the queue consumer records each
-- delivered batch with one call of record_queued_usage. Delivery is at least
-- once; the ledger's (user, idempotency key) uniqueness makes every event
-- count once. Events that can never be recorded are kept in
-- platform.usage_rejections with the reason, so the consumer acknowledges them
-- instead of retrying forever.

-- Whether the queue may record events for a (user, API key) pair, as
-- record_token_usage_batch judges its caller: null, or the refusal that
-- rejects every event of the pair ({"code", "message"}: an unknown, banned or
-- deleted user, a viewer, a foreign, revoked or expired key, a malformed id).
-- It writes nothing, so its subtransaction (one per pair, not per event) is
-- cheap. Anything but a refusal fails the call, as the database failing does.
create or replace function platform.queued_usage_refusal(p_user_id text, p_api_key_id text)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_key uuid;
  v_state text;
  v_message text;
  v_hint text;
begin
  v_user := p_user_id::uuid;
  v_key := p_api_key_id::uuid;
  perform platform.check_api_key_owner(v_key, platform.caller_user_id(v_user, true));
  return null;
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
  if v_state not like 'PT4%' and v_state <> '22P02' then
    raise;
  end if;
  return jsonb_build_object('code', case when v_state like 'PT%' then v_hint else 'invalid_event' end,
                            'message', case when v_state like 'PT%' then v_message
                                            else 'an id in this event is not a valid UUID' end);
end
$$;
revoke execute on function platform.queued_usage_refusal(text, text)
  from public, anon, authenticated, service_role;

-- The events of a delivered batch, in order, as the consumer sends them:
-- each element of p_messages either one queue message, {"user_id",
-- "api_key_id"?, "events": [{batch item}, ...], "accepted_at_ms"?}, or one
-- event, {"user_id", "api_key_id"?, "event": {batch item},
-- "accepted_at_ms"?}. The consumer sends messages: naming the user, key and
-- time once per message rather than once per event halves the body of a
-- delivery (a 10,000-event delivery of single events passed the REST
-- layer's 2 MB body limit).
create or replace function platform.queued_events(p_messages jsonb)
returns table (user_id text, api_key_id text, event jsonb, accepted_at_ms jsonb, i bigint)
language sql immutable
set search_path = ''
as $$
  select m.m ->> 'user_id', m.m ->> 'api_key_id', e.event, m.m -> 'accepted_at_ms',
         row_number() over (order by m.i, e.j)
    from jsonb_array_elements(p_messages) with ordinality m(m, i)
    cross join lateral (
      select x.event, x.j
        from jsonb_array_elements(case when jsonb_typeof(m.m -> 'events') = 'array' then m.m -> 'events' end)
             with ordinality x(event, j)
      union all
      select m.m -> 'event', 1 where jsonb_typeof(m.m -> 'events') is distinct from 'array'
    ) e
$$;
revoke execute on function platform.queued_events(jsonb) from public, anon, authenticated, service_role;

-- POST /rpc/record_queued_usage (service role): one delivered queue batch.
-- p_messages: its messages or events (queued_events).
-- Each (user, key) pair is judged once (queued_usage_refusal); the events of
-- the pairs that may record are recorded together, as one set, by
-- record_usage_events (each user's events in message order). A refusal (our
-- PTxyz codes, malformed ids) is permanent: the event goes to
-- usage_rejections and the answer says so. Anything else (the database
-- failing) fails the whole call, so the consumer retries the batch; what was
-- already recorded then replays.
-- Returns {"messages", "recorded", "replayed", "rejected", "lag_ms",
-- "rejections"}: "messages" counts the events, and "rejections" lists only
-- the rejected events, in order, {"index" (the event's position in the
-- delivery, from 0), "idempotency_key", "error": {"code", "message"}}. The
-- consumer needs no more: the call either judged every event for good
-- (acknowledge the batch) or failed (retry it); an answer per event was
-- ~300 KB for a 5,000-event delivery, built, sent and parsed for nothing.
-- Each recorded event's ledger row is usage_event_status's.
create or replace function platform.record_queued_usage(p_messages jsonb)
returns json
language plpgsql security definer
set search_path = ''
as $$
declare
  v_started timestamptz := clock_timestamp();
  -- The messages' fields, in order, read from p_messages in one pass: a
  -- delivery is thousands of messages, and each walk over them costs as
  -- much as a tenth of recording them.
  v_user_ids text[];
  v_key_ids text[];
  v_all_events jsonb[];
  -- Per message, in order: its pair's refusal (null when it may record).
  v_refusals jsonb[];
  -- The messages that may record: their positions (1-based) and answers.
  v_positions bigint[];
  v_users uuid[];
  v_keys uuid[];
  v_events jsonb[];
  v_event_statuses text[];
  v_answers json[];
  -- Per event, in order: its status, and its refusal when rejected.
  v_statuses text[];
  v_errors json[];
  v_rejections json := '[]';
  v_recorded integer := 0;
  v_replayed integer := 0;
  v_rejected integer := 0;
  v_oldest_ms numeric;
  v_summary jsonb;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the queue consumer records queued usage');
  end if;
  if p_messages is null or jsonb_typeof(p_messages) <> 'array' then
    perform platform.fail('PT422', 'invalid_batch', 'p_messages must be a JSON array');
  end if;

  select array_agg(t.user_id order by t.i), array_agg(t.api_key_id order by t.i),
         array_agg(t.event order by t.i),
         min((t.accepted_at_ms)::numeric) filter (where jsonb_typeof(t.accepted_at_ms) = 'number')
    into v_user_ids, v_key_ids, v_all_events, v_oldest_ms
    from platform.queued_events(p_messages) t;

  with message as (
    select t.i, t.user_id, t.api_key_id
      from unnest(v_user_ids, v_key_ids) with ordinality t(user_id, api_key_id, i)
  ), pair as materialized (
    select g.user_id, g.api_key_id, platform.queued_usage_refusal(g.user_id, g.api_key_id) as refusal
      from (select distinct m.user_id, m.api_key_id from message m) g
  )
  select array_agg(p.refusal order by m.i) into v_refusals
    from message m
    join pair p on p.user_id is not distinct from m.user_id and p.api_key_id is not distinct from m.api_key_id;

  -- The ids of a pair without a refusal are valid UUIDs (or a null key).
  select array_agg(t.i order by t.i), array_agg(t.user_id::uuid order by t.i),
         array_agg(t.api_key_id::uuid order by t.i), array_agg(t.event order by t.i)
    into v_positions, v_users, v_keys, v_events
    from unnest(v_user_ids, v_key_ids, v_all_events, v_refusals)
         with ordinality t(user_id, api_key_id, event, refusal, i)
   where t.refusal is null;
  if v_positions is not null then
    select r.statuses, r.answers into v_event_statuses, v_answers
      from platform.record_usage_events(v_users, v_keys, v_events, true) r;
  end if;
  -- The compact answers carry no index: each is at its event's position.
  select coalesce(array_agg(coalesce(a.status, 'rejected') order by t.i), '{}'),
         coalesce(array_agg(case when a.status is null then t.refusal::json
                                 when a.status = 'rejected' then a.answer -> 'error' end
                            order by t.i), '{}'),
         count(*) filter (where a.status = 'recorded'),
         count(*) filter (where a.status = 'replayed'),
         count(*) filter (where a.status is null or a.status = 'rejected')
    into v_statuses, v_errors, v_recorded, v_replayed, v_rejected
    from unnest(v_refusals) with ordinality t(refusal, i)
    left join unnest(v_positions, v_event_statuses, v_answers) a(i, status, answer)
      on a.i = t.i;

  -- Keep every refusal with its reason; a redelivered refusal is kept once.
  -- A malformed user id cannot be kept against a user and is only answered.
  if v_rejected > 0 then
    insert into platform.usage_rejections (user_id, idempotency_key, api_key_id, source, code, message, event)
    select t.user_id::uuid, coalesce(t.event ->> 'idempotency_key', ''),
           case when platform.is_uuid(t.api_key_id) then t.api_key_id::uuid end,
           'queue', t.error ->> 'code', t.error ->> 'message', coalesce(t.event, 'null')
      from unnest(v_user_ids, v_key_ids, v_all_events, v_statuses, v_errors)
           t(user_id, api_key_id, event, status, error)
     where t.status = 'rejected'
       and platform.is_uuid(t.user_id)
       and coalesce(t.event ->> 'idempotency_key', '') <> ''
    on conflict (user_id, idempotency_key) do nothing;
    select json_agg(json_build_object('index', t.i - 1, 'idempotency_key', t.event ->> 'idempotency_key',
                                      'error', t.error) order by t.i)
      into v_rejections
      from unnest(v_all_events, v_statuses, v_errors) with ordinality t(event, status, error, i)
     where t.status = 'rejected';
  end if;

  v_summary := jsonb_build_object('messages', coalesce(cardinality(v_user_ids), 0), 'recorded', v_recorded,
    'replayed', v_replayed, 'rejected', v_rejected,
    -- How long the oldest event of the batch waited between the edge
    -- accepting it and its recording: the queue's lag.
    'lag_ms', case when v_oldest_ms is not null
      then greatest(0, round(extract(epoch from clock_timestamp()) * 1000 - v_oldest_ms)) end);
  perform telemetry.record_queue_batch(extract(epoch from clock_timestamp() - v_started) * 1000, v_summary);
  return json_build_object('messages', v_summary -> 'messages', 'recorded', v_recorded,
    'replayed', v_replayed, 'rejected', v_rejected, 'lag_ms', v_summary -> 'lag_ms',
    'rejections', v_rejections);
end
$$;
revoke execute on function platform.record_queued_usage(jsonb) from public, anon, authenticated, service_role;
grant execute on function platform.record_queued_usage(jsonb) to service_role;

-- POST /rpc/record_usage_dead_letters (service role): messages the queue gave
-- up on after its retries. Each becomes a rejection with the reason, unless
-- the event was recorded after all (a run whose answer was lost).
create or replace function platform.record_usage_dead_letters(p_messages jsonb, p_reason text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_kept integer;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the queue consumer records dead letters');
  end if;
  if p_messages is null or jsonb_typeof(p_messages) <> 'array' then
    perform platform.fail('PT422', 'invalid_batch', 'p_messages must be a JSON array');
  end if;
  insert into platform.usage_rejections (user_id, idempotency_key, api_key_id, source, code, message, event)
  select m.user_id::uuid, m.event ->> 'idempotency_key',
         case when platform.is_uuid(m.api_key_id) then m.api_key_id::uuid end,
         'dead_letter', 'dead_lettered', left(coalesce(p_reason, 'the queue gave up after its retries'), 500),
         coalesce(m.event, 'null')
    from platform.queued_events(p_messages) m
   where platform.is_uuid(m.user_id)
     and coalesce(m.event ->> 'idempotency_key', '') <> ''
     and not exists (select 1 from platform.token_usage u
                      where u.user_id = m.user_id::uuid
                        and u.idempotency_key = m.event ->> 'idempotency_key')
  on conflict (user_id, idempotency_key) do nothing;
  get diagnostics v_kept = row_count;
  return jsonb_build_object('messages', (select count(*) from platform.queued_events(p_messages)),
                            'dead_lettered', v_kept);
end
$$;
revoke execute on function platform.record_usage_dead_letters(jsonb, text)
  from public, anon, authenticated, service_role;
grant execute on function platform.record_usage_dead_letters(jsonb, text) to service_role;

-- POST /rpc/usage_event_status: what became of one of the caller's events:
-- recorded (with the ledger row's answer), rejected (with the reason), or
-- queued: neither yet. The edge keeps no per-event state between accepting
-- an event and its recording (that write per event is what the queue saves),
-- so a key that was never sent also reads as queued.
create or replace function platform.usage_event_status(
  p_idempotency_key text,
  p_user_id uuid default null,
  p_api_key_id uuid default null
)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, false);
  v_row platform.token_usage;
  v_rejection platform.usage_rejections;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  select * into v_row from platform.token_usage u
   where u.user_id = v_uid and u.idempotency_key = p_idempotency_key;
  if found then
    return jsonb_build_object('status', 'recorded', 'idempotency_key', p_idempotency_key)
           || (platform.usage_result(v_row, false) - 'replayed');
  end if;
  select * into v_rejection from platform.usage_rejections r
   where r.user_id = v_uid and r.idempotency_key = p_idempotency_key;
  if found then
    return jsonb_build_object('status', 'rejected', 'idempotency_key', p_idempotency_key,
      'error', jsonb_build_object('code', v_rejection.code, 'message', v_rejection.message),
      'rejected_at', v_rejection.rejected_at);
  end if;
  return jsonb_build_object('status', 'queued', 'idempotency_key', p_idempotency_key);
end
$$;
revoke execute on function platform.usage_event_status(text, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.usage_event_status(text, uuid, uuid) to authenticated, service_role;
