-- What the edge records about its calls and its background work. Calls are
-- kept as aggregates, never one row per call, so a flood of requests (even
-- refused ones) costs the database no write per request and the tables stay
-- small whatever the traffic:
--   execution_metrics  one cell per (minute, function, status, HTTP status):
--                      calls, duration sum and maximum, histogram buckets;
--                      kept for telemetry.retention(), then pruned.
--   execution_totals   the same counts summed over all time, one row per
--                      (function, status, HTTP status): what Prometheus
--                      scrapes (counters must never go down, so they cannot
--                      be read from a window that slides).
--   queue_batches      one row per batch the usage queue's consumer recorded
--                      (its lag), appended, never updated: the consumer's busy
--                      transactions never wait on a shared row.
--   user_mirrors       one row per mirror_auth_user call that names its source.
-- Each Worker isolate adds up its calls in memory and sends them in one
-- platform.record_execution_metrics call every few seconds; SQL functions
-- that run rarely record through telemetry.record_call. Telemetry is not
-- exposed; admins read it.

-- Histogram bucket bounds in milliseconds (Prometheus `le`); the edge's
-- aggregator (shared::telemetry::BOUNDS_MS) uses the same list.
create or replace function telemetry.duration_bounds_ms()
returns numeric[]
language sql immutable
set search_path = ''
as $$ select array[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]::numeric[] $$;

-- How long minute cells, queue batches and user mirrors are kept.
create or replace function telemetry.retention()
returns interval
language sql immutable
set search_path = ''
as $$ select interval '7 days' $$;

-- Cumulative bucket counts are well formed: one per bound, none negative,
-- never decreasing, none above the calls they count.
create or replace function telemetry.valid_buckets(p_buckets bigint[], p_calls bigint)
returns boolean
language sql immutable
set search_path = ''
as $$
  select cardinality(p_buckets) = cardinality(telemetry.duration_bounds_ms())
     and array_position(p_buckets, null) is null
     and p_buckets[1] >= 0
     and p_buckets[cardinality(p_buckets)] <= p_calls
     and not exists (select 1 from generate_subscripts(p_buckets, 1) i
                      where i > 1 and p_buckets[i] < p_buckets[i - 1])
$$;

create table if not exists telemetry.execution_metrics (
  -- The minute the calls ended in (UTC; a whole minute since the epoch).
  minute timestamptz not null
    constraint execution_metrics_minute_whole check (extract(epoch from minute) % 60 = 0),
  function_name text not null
    constraint execution_metrics_function_format check (function_name ~ '^[a-z][a-z0-9_./-]{0,99}$'),
  -- ok: served; error: failed; skipped: a scheduled run that found another running.
  status text not null
    constraint execution_metrics_status_known check (status in ('ok', 'error', 'skipped')),
  http_status smallint
    constraint execution_metrics_http_status_range check (http_status between 100 and 599),
  calls bigint not null
    constraint execution_metrics_calls_positive check (calls > 0),
  sum_ms numeric(18, 3) not null
    constraint execution_metrics_sum_non_negative check (sum_ms >= 0),
  max_ms numeric(12, 3) not null
    constraint execution_metrics_max_non_negative check (max_ms >= 0),
  -- Calls that took at most each of telemetry.duration_bounds_ms().
  buckets bigint[] not null
    constraint execution_metrics_buckets_valid check (telemetry.valid_buckets(buckets, calls)),
  updated_at timestamptz not null default now(),
  -- A call without an HTTP status (a queue batch, a cron run) has its own cell.
  constraint execution_metrics_cell unique nulls not distinct (minute, function_name, status, http_status)
);

create table if not exists telemetry.execution_totals (
  function_name text not null
    constraint execution_totals_function_format check (function_name ~ '^[a-z][a-z0-9_./-]{0,99}$'),
  status text not null
    constraint execution_totals_status_known check (status in ('ok', 'error', 'skipped')),
  http_status smallint
    constraint execution_totals_http_status_range check (http_status between 100 and 599),
  calls bigint not null
    constraint execution_totals_calls_positive check (calls > 0),
  sum_ms numeric(24, 3) not null
    constraint execution_totals_sum_non_negative check (sum_ms >= 0),
  buckets bigint[] not null
    constraint execution_totals_buckets_valid check (telemetry.valid_buckets(buckets, calls)),
  updated_at timestamptz not null default now(),
  constraint execution_totals_key unique nulls not distinct (function_name, status, http_status)
);

create table if not exists telemetry.queue_batches (
  id bigint generated always as identity primary key,
  recorded_at timestamptz not null default now(),
  messages integer not null constraint queue_batches_messages_non_negative check (messages >= 0),
  recorded integer not null default 0,
  replayed integer not null default 0,
  rejected integer not null default 0,
  -- How long the batch's oldest event waited between the edge accepting it
  -- and its recording; null when no message said when it was accepted.
  lag_ms numeric(14, 0) constraint queue_batches_lag_non_negative check (lag_ms >= 0),
  duration_ms numeric(12, 3) not null constraint queue_batches_duration_non_negative check (duration_ms >= 0)
);
create index if not exists queue_batches_recorded_idx on telemetry.queue_batches (recorded_at);

create table if not exists telemetry.user_mirrors (
  id bigint generated always as identity primary key,
  recorded_at timestamptz not null default now(),
  user_id uuid not null,
  source text not null constraint user_mirrors_source_known check (source in ('webhook', 'jit')),
  -- true: this call made the platform.users row (for `jit`, the webhook did not).
  created boolean not null
);
create index if not exists user_mirrors_recorded_idx on telemetry.user_mirrors (recorded_at);
create index if not exists user_mirrors_user_idx on telemetry.user_mirrors (user_id);

alter table telemetry.execution_metrics enable row level security;
alter table telemetry.execution_totals enable row level security;
alter table telemetry.queue_batches enable row level security;
alter table telemetry.user_mirrors enable row level security;
revoke all on telemetry.execution_metrics, telemetry.execution_totals, telemetry.queue_batches,
  telemetry.user_mirrors from public, anon, authenticated, service_role;
grant select on telemetry.execution_metrics to authenticated, service_role;
grant select on telemetry.execution_totals, telemetry.queue_batches, telemetry.user_mirrors to service_role;

drop policy if exists "admins read execution metrics" on telemetry.execution_metrics;
create policy "admins read execution metrics" on telemetry.execution_metrics
  for select to authenticated
  using ((select platform.is_admin()));

-- Internal helpers, called only from the security definer RPCs (as their
-- owner): nobody else may execute them.

-- Element-wise sum of two bucket arrays, and the aggregate over it.
create or replace function telemetry.add_buckets(p_a bigint[], p_b bigint[])
returns bigint[]
language sql immutable strict
set search_path = ''
as $$ select array(select x.a + x.b from unnest(p_a, p_b) with ordinality x(a, b, i) order by x.i) $$;

create or replace aggregate telemetry.sum_buckets(bigint[]) (
  sfunc = telemetry.add_buckets,
  stype = bigint[]
);

-- The cumulative buckets of one call that took p_duration_ms.
create or replace function telemetry.buckets_of(p_duration_ms numeric)
returns bigint[]
language sql immutable
set search_path = ''
as $$
  select array(select case when greatest(coalesce(p_duration_ms, 0), 0) <= b then 1::bigint else 0::bigint end
                 from unnest(telemetry.duration_bounds_ms()) with ordinality x(b, i) order by x.i)
$$;

-- The cells of a flush as rows: [{minute (seconds since the epoch, a whole
-- minute), function, status, http_status, count, sum_ms, max_ms, buckets}].
-- Callers check the shape first (telemetry.add_cells).
create or replace function telemetry.cells_of(p_cells jsonb)
returns table (minute timestamptz, function_name text, status text, http_status smallint,
               calls bigint, sum_ms numeric, max_ms numeric, buckets bigint[])
language sql immutable
set search_path = ''
as $$
  select to_timestamp((e ->> 'minute')::bigint), e ->> 'function', e ->> 'status',
         (e ->> 'http_status')::smallint, (e ->> 'count')::bigint,
         round(greatest((e ->> 'sum_ms')::numeric, 0), 3), round(greatest((e ->> 'max_ms')::numeric, 0), 3),
         array(select b::text::bigint from jsonb_array_elements(e -> 'buckets') with ordinality x(b, i) order by x.i)
    from jsonb_array_elements(p_cells) e
$$;

-- Adds the cells of a flush to the minute cells and to the totals: two
-- upserts that add, each taking its rows in one order (cells, then totals;
-- each sorted by key), so concurrent flushes wait for each other but never
-- deadlock. Answers the number of calls added.
create or replace function telemetry.add_cells(p_cells jsonb)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_bad bigint;
  v_calls bigint;
begin
  if p_cells is null or jsonb_typeof(p_cells) <> 'array' then
    perform platform.fail('PT422', 'invalid_cells', 'p_cells must be a JSON array');
  end if;
  if jsonb_array_length(p_cells) > 10000 then
    perform platform.fail('PT413', 'too_many_cells', 'a flush carries at most 10000 cells');
  end if;
  -- CASE, not OR: a cast must only meet text its pattern has already accepted.
  select min(t.i) into v_bad
    from jsonb_array_elements(p_cells) with ordinality t(e, i)
   where case
           when jsonb_typeof(t.e) <> 'object'
             or coalesce(t.e ->> 'minute', '') !~ '^[0-9]{1,12}$'
             or coalesce(jsonb_typeof(t.e -> 'function'), '') <> 'string'
             or coalesce(jsonb_typeof(t.e -> 'status'), '') <> 'string'
             or not (coalesce(jsonb_typeof(t.e -> 'http_status'), 'null') = 'null'
                     or t.e ->> 'http_status' ~ '^[0-9]{1,3}$')
             or coalesce(t.e ->> 'count', '') !~ '^[0-9]{1,15}$'
             or coalesce(jsonb_typeof(t.e -> 'sum_ms'), '') <> 'number'
             or coalesce(jsonb_typeof(t.e -> 'max_ms'), '') <> 'number'
             or coalesce(jsonb_typeof(t.e -> 'buckets'), '') <> 'array' then true
           when exists (select 1 from jsonb_array_elements(t.e -> 'buckets') b
                         where b::text !~ '^[0-9]{1,15}$') then true
           else to_timestamp((t.e ->> 'minute')::bigint) > now() + interval '1 hour'
         end;
  if v_bad is not null then
    perform platform.fail('PT422', 'invalid_cells',
      format('cell %s is not {minute (whole seconds, not in the future), function, status, '
             'http_status, count, sum_ms, max_ms, buckets}', v_bad - 1));
  end if;
  if exists (select 1 from telemetry.cells_of(p_cells) c
              group by c.minute, c.function_name, c.status, c.http_status having count(*) > 1) then
    perform platform.fail('PT422', 'invalid_cells',
      'two cells have the same minute, function, status and http_status');
  end if;

  insert into telemetry.execution_metrics as m
    (minute, function_name, status, http_status, calls, sum_ms, max_ms, buckets)
  select c.minute, c.function_name, c.status, c.http_status, c.calls, c.sum_ms, c.max_ms, c.buckets
    from telemetry.cells_of(p_cells) c
   order by c.minute, c.function_name, c.status, c.http_status
  on conflict (minute, function_name, status, http_status) do update
    set calls = m.calls + excluded.calls,
        sum_ms = m.sum_ms + excluded.sum_ms,
        max_ms = greatest(m.max_ms, excluded.max_ms),
        buckets = telemetry.add_buckets(m.buckets, excluded.buckets),
        updated_at = now();

  insert into telemetry.execution_totals as t (function_name, status, http_status, calls, sum_ms, buckets)
  select c.function_name, c.status, c.http_status, sum(c.calls), sum(c.sum_ms), telemetry.sum_buckets(c.buckets)
    from telemetry.cells_of(p_cells) c
   group by c.function_name, c.status, c.http_status
   order by c.function_name, c.status, c.http_status
  on conflict (function_name, status, http_status) do update
    set calls = t.calls + excluded.calls,
        sum_ms = t.sum_ms + excluded.sum_ms,
        buckets = telemetry.add_buckets(t.buckets, excluded.buckets),
        updated_at = now();

  select coalesce(sum(c.calls), 0) into v_calls from telemetry.cells_of(p_cells) c;
  return v_calls;
end
$$;

-- One call, recorded by SQL that runs rarely (the summary refresh, a user
-- mirror): a cell of the current minute.
create or replace function telemetry.record_call(
  p_function text,
  p_status text,
  p_http_status integer,
  p_duration_ms numeric
) returns void
language sql
set search_path = ''
as $$
  select telemetry.add_cells(jsonb_build_array(jsonb_build_object(
    'minute', (floor(extract(epoch from now()) / 60) * 60)::bigint,
    'function', p_function, 'status', p_status, 'http_status', p_http_status, 'count', 1,
    'sum_ms', greatest(coalesce(p_duration_ms, 0), 0), 'max_ms', greatest(coalesce(p_duration_ms, 0), 0),
    'buckets', to_jsonb(telemetry.buckets_of(p_duration_ms)))));
$$;

-- One batch of the usage queue's consumer (record_queued_usage's answer
-- without its results), appended: never a row another batch waits on.
create or replace function telemetry.record_queue_batch(p_duration_ms numeric, p_summary jsonb)
returns void
language sql
set search_path = ''
as $$
  insert into telemetry.queue_batches (messages, recorded, replayed, rejected, lag_ms, duration_ms)
  values (coalesce((p_summary ->> 'messages')::integer, 0), coalesce((p_summary ->> 'recorded')::integer, 0),
          coalesce((p_summary ->> 'replayed')::integer, 0), coalesce((p_summary ->> 'rejected')::integer, 0),
          (p_summary ->> 'lag_ms')::numeric, greatest(coalesce(p_duration_ms, 0), 0));
$$;

revoke execute on function telemetry.duration_bounds_ms(), telemetry.retention(),
  telemetry.valid_buckets(bigint[], bigint), telemetry.add_buckets(bigint[], bigint[]),
  telemetry.sum_buckets(bigint[]), telemetry.buckets_of(numeric), telemetry.cells_of(jsonb),
  telemetry.add_cells(jsonb),
  telemetry.record_call(text, text, integer, numeric), telemetry.record_queue_batch(numeric, jsonb)
  from public, anon, authenticated, service_role;
