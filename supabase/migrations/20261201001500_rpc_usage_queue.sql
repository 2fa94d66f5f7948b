-- High-volume usage through Cloudflare Queues: the edge accepts events with
-- `Prefer: respond-async`, enqueues them, and the queue consumer records each
-- delivered batch with one call of record_queued_usage. Delivery is at least
-- once; the ledger's (user, idempotency key) uniqueness makes every event
-- count once. Events that can never be recorded are kept in
-- platform.usage_rejections with the reason, so the consumer acknowledges them
-- instead of retrying forever.

-- POST /rpc/record_queued_usage (service role): one delivered queue batch.
-- p_messages: [{"user_id", "api_key_id"?, "event": {batch item}, "accepted_at_ms"?}].
-- Events are grouped per (user, key) into record_token_usage_batch calls. A
-- refusal (our PTxyz codes, malformed ids) is permanent: the event goes to
-- usage_rejections and the answer says so. Anything else (the database
-- failing) fails the whole call, so the consumer retries the batch; what
-- was already recorded then replays.
create or replace function platform.record_queued_usage(p_messages jsonb)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_group record;
  v_answer jsonb;
  v_result jsonb;
  v_results jsonb[];
  v_state text;
  v_message text;
  v_hint text;
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
  v_results := array_fill(null::jsonb, array[jsonb_array_length(p_messages)]);

  -- One record_token_usage_batch call per (user, key), in chunks of the
  -- batch RPC's maximum.
  for v_group in
    select x.user_id, x.api_key_id,
           array_agg(x.i - 1 order by x.i) as indexes,
           jsonb_agg(x.m -> 'event' order by x.i) as events
      from (select t.m, t.i, t.m ->> 'user_id' as user_id, t.m ->> 'api_key_id' as api_key_id,
                   (row_number() over (partition by t.m ->> 'user_id', t.m ->> 'api_key_id' order by t.i) - 1)
                     / platform.max_batch_events() as chunk
              from jsonb_array_elements(p_messages) with ordinality t(m, i)) x
     group by x.user_id, x.api_key_id, x.chunk
  loop
    begin
      v_answer := platform.record_token_usage_batch(v_group.events, v_group.user_id::uuid,
                                                    v_group.api_key_id::uuid);
      for k in 1 .. array_length(v_group.indexes, 1) loop
        v_result := v_answer -> 'results' -> (k - 1);
        v_results[v_group.indexes[k] + 1] := v_result - 'index';
      end loop;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
      -- A refusal of the whole group (unknown user, viewer, foreign or
      -- revoked key) is permanent for each of its events.
      if v_state not like 'PT4%' and v_state <> '22P02' then
        raise;
      end if;
      for k in 1 .. array_length(v_group.indexes, 1) loop
        v_results[v_group.indexes[k] + 1] := jsonb_build_object('status', 'rejected', 'error',
          jsonb_build_object('code', case when v_state like 'PT%' then v_hint else 'invalid_event' end,
                             'message', case when v_state like 'PT%' then v_message
                                             else 'an id in this event is not a valid UUID' end));
      end loop;
    end;
  end loop;

  -- Keep every refusal with its reason; a redelivered refusal is kept once.
  -- A malformed user id cannot be kept against a user and is only answered.
  insert into platform.usage_rejections (user_id, idempotency_key, api_key_id, source, code, message, event)
  select (m ->> 'user_id')::uuid, coalesce(m -> 'event' ->> 'idempotency_key', ''),
         case when platform.is_uuid(m ->> 'api_key_id') then (m ->> 'api_key_id')::uuid end,
         'queue', r -> 'error' ->> 'code', r -> 'error' ->> 'message', coalesce(m -> 'event', 'null')
    from jsonb_array_elements(p_messages) with ordinality t(m, i)
    join lateral (select v_results[i] as r) x on true
   where r ->> 'status' = 'rejected'
     and platform.is_uuid(m ->> 'user_id')
     and coalesce(m -> 'event' ->> 'idempotency_key', '') <> ''
  on conflict (user_id, idempotency_key) do nothing;

  select count(*) filter (where r ->> 'status' = 'recorded'),
         count(*) filter (where r ->> 'status' = 'replayed'),
         count(*) filter (where r ->> 'status' = 'rejected')
    into v_recorded, v_replayed, v_rejected
    from unnest(v_results) r;
  select min((m ->> 'accepted_at_ms')::numeric) into v_oldest_ms
    from jsonb_array_elements(p_messages) m
   where jsonb_typeof(m -> 'accepted_at_ms') = 'number';

  v_summary := jsonb_build_object('messages', jsonb_array_length(p_messages), 'recorded', v_recorded,
    'replayed', v_replayed, 'rejected', v_rejected,
    -- How long the oldest event of the batch waited between the edge
    -- accepting it and its recording: the queue's lag.
    'lag_ms', case when v_oldest_ms is not null
      then greatest(0, round(extract(epoch from clock_timestamp()) * 1000 - v_oldest_ms)) end);
  perform telemetry.record_queue_batch(extract(epoch from clock_timestamp() - v_started) * 1000, v_summary);
  return v_summary || jsonb_build_object('results', to_jsonb(v_results));
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
  select (m ->> 'user_id')::uuid, m -> 'event' ->> 'idempotency_key',
         case when platform.is_uuid(m ->> 'api_key_id') then (m ->> 'api_key_id')::uuid end,
         'dead_letter', 'dead_lettered', left(coalesce(p_reason, 'the queue gave up after its retries'), 500),
         coalesce(m -> 'event', 'null')
    from jsonb_array_elements(p_messages) m
   where platform.is_uuid(m ->> 'user_id')
     and coalesce(m -> 'event' ->> 'idempotency_key', '') <> ''
     and not exists (select 1 from platform.token_usage u
                      where u.user_id = (m ->> 'user_id')::uuid
                        and u.idempotency_key = m -> 'event' ->> 'idempotency_key')
  on conflict (user_id, idempotency_key) do nothing;
  get diagnostics v_kept = row_count;
  return jsonb_build_object('messages', jsonb_array_length(p_messages), 'dead_lettered', v_kept);
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
