-- Telemetry RPCs: record_execution_metrics (each Worker isolate flushes the
-- calls it added up, every few seconds, in one call), record_execution_metric
-- (one call, for a client that cannot add up), prune_telemetry (the cron's
-- retention) and metrics_snapshot (GET /v1/metrics). Telemetry itself is not
-- exposed.

-- POST /rpc/record_execution_metrics (service role): adds an isolate's cells
-- (see telemetry.add_cells) to the minute cells and the lifetime totals.
-- Answers how many cells and calls it added.
create or replace function platform.record_execution_metrics(p_cells jsonb)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_calls bigint;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role records metrics');
  end if;
  v_calls := telemetry.add_cells(p_cells);
  return jsonb_build_object('cells', jsonb_array_length(p_cells), 'calls', v_calls);
end
$$;
revoke execute on function platform.record_execution_metrics(jsonb) from public, anon, authenticated, service_role;
grant execute on function platform.record_execution_metrics(jsonb) to service_role;

-- POST /rpc/record_execution_metric (service role): one call, added to the
-- cell of the current minute. The edge adds up its calls and flushes them
-- with record_execution_metrics instead; this is for a client that sends one
-- call at a time (the TypeScript bench peer). p_request_id and p_details are
-- accepted and no longer kept: a cell counts calls, it does not list them.
create or replace function platform.record_execution_metric(
  p_function text,
  p_status text,
  p_duration_ms numeric,
  p_http_status integer default null,
  p_request_id text default null,
  p_details jsonb default '{}'
) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  if not platform.is_service_role() then
    raise exception using errcode = 'PT403', message = 'only the service role records metrics',
      hint = 'forbidden';
  end if;
  perform telemetry.record_call(p_function, p_status, p_http_status, p_duration_ms);
end
$$;
revoke execute on function platform.record_execution_metric(text, text, numeric, integer, text, jsonb)
  from public, anon, authenticated, service_role;
grant execute on function platform.record_execution_metric(text, text, numeric, integer, text, jsonb)
  to service_role;

-- POST /rpc/prune_telemetry (service role; the Worker's cron calls it every
-- few minutes): deletes minute cells, queue batches and user mirrors older
-- than telemetry.retention(), at most 20000 rows of each per call, so one
-- call stays short however much has piled up; `more` says some are left for
-- the next call. The totals are never pruned: they are bounded by the
-- functions and statuses there are, not by time.
create or replace function platform.prune_telemetry()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_limit constant integer := 20000;
  v_before timestamptz := now() - telemetry.retention();
  v_cells bigint;
  v_batches bigint;
  v_mirrors bigint;
begin
  if not platform.is_service_role() then
    perform platform.fail('PT403', 'forbidden', 'only the service role prunes telemetry');
  end if;
  delete from telemetry.execution_metrics m
   where m.ctid = any (array(select x.ctid from telemetry.execution_metrics x
                               where x.minute < v_before limit v_limit));
  get diagnostics v_cells = row_count;
  delete from telemetry.queue_batches q
   where q.id = any (array(select x.id from telemetry.queue_batches x
                             where x.recorded_at < v_before order by x.recorded_at limit v_limit));
  get diagnostics v_batches = row_count;
  delete from telemetry.user_mirrors u
   where u.id = any (array(select x.id from telemetry.user_mirrors x
                             where x.recorded_at < v_before order by x.recorded_at limit v_limit));
  get diagnostics v_mirrors = row_count;
  return jsonb_build_object('before', v_before, 'execution_metrics', v_cells,
    'queue_batches', v_batches, 'user_mirrors', v_mirrors,
    'more', greatest(v_cells, v_batches, v_mirrors) >= v_limit);
end
$$;
revoke execute on function platform.prune_telemetry() from public, anon, authenticated, service_role;
grant execute on function platform.prune_telemetry() to service_role;

-- POST /rpc/metrics_snapshot: what GET /v1/metrics serves in Prometheus
-- format: calls per function and status, duration histograms, how fresh the
-- daily summary is and how much usage waits to be folded into it (the
-- refresh's lag in rows), and the usage queue: the lag of the consumer's
-- latest batch, rejections and dead letters. Admins and the service role only.
-- Its cost does not grow with history: calls and durations come from the
-- lifetime totals (one row per function, status and HTTP status), the queue
-- lag from the latest batch by its key, rejections from their counters (one
-- row per source and reason, usage_rejection_counts).
create or replace function platform.metrics_snapshot()
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_refreshed timestamptz;
  v_queue record;
begin
  if not (platform.is_service_role() or platform.is_admin()) then
    perform platform.fail('PT403', 'forbidden', 'only admins read the metrics');
  end if;
  select s.refreshed_at into v_refreshed from analytics.summary_state s where s.name = 'daily_token_summary';
  select q.recorded_at, q.lag_ms into v_queue
    from telemetry.queue_batches q
   order by q.id desc limit 1;
  return jsonb_build_object(
    'queue_last_batch_at', extract(epoch from v_queue.recorded_at),
    'queue_lag_ms', v_queue.lag_ms,
    'usage_rejections', coalesce((
      select jsonb_agg(jsonb_build_object('source', r.source, 'code', r.code, 'count', r.n)
                       order by r.source, r.code)
        from (select c.source, c.code, c.rejections as n from platform.usage_rejection_counts c
               where c.rejections > 0) r), '[]'),
    'now', extract(epoch from now()),
    'summary_refreshed_at', extract(epoch from v_refreshed),
    'summary_pending_deltas', (select count(*) from analytics.daily_token_deltas),
    'bounds_ms', to_jsonb(telemetry.duration_bounds_ms()),
    'calls', coalesce((
      select jsonb_agg(jsonb_build_object('function', t.function_name, 'status', t.status,
                                          'http_status', t.http_status, 'count', t.calls)
                       order by t.function_name, t.status, t.http_status)
        from telemetry.execution_totals t), '[]'),
    'durations', coalesce((
      select jsonb_agg(jsonb_build_object(
               'function', d.function_name, 'count', d.calls, 'sum_ms', d.sum_ms,
               'buckets', to_jsonb(d.buckets)) order by d.function_name)
        from (select t.function_name, sum(t.calls) as calls, sum(t.sum_ms) as sum_ms,
                     telemetry.sum_buckets(t.buckets) as buckets
                from telemetry.execution_totals t
               group by t.function_name) d), '[]')
  );
end
$$;
revoke execute on function platform.metrics_snapshot() from public, anon, authenticated, service_role;
grant execute on function platform.metrics_snapshot() to authenticated, service_role;
