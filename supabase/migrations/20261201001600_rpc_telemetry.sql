-- Telemetry RPCs: record_execution_metric (the edge writes its metrics through
-- it; telemetry is not exposed) and metrics_snapshot (GET /v1/metrics).

-- POST /rpc/record_execution_metric (service role): one telemetry row.
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
  insert into telemetry.execution_metrics (function_name, status, http_status, duration_ms, request_id, details)
  values (p_function, p_status, p_http_status, greatest(p_duration_ms, 0), p_request_id,
          coalesce(p_details, '{}'));
end
$$;
revoke execute on function platform.record_execution_metric(text, text, numeric, integer, text, jsonb)
  from public, anon, authenticated, service_role;
grant execute on function platform.record_execution_metric(text, text, numeric, integer, text, jsonb)
  to service_role;

-- POST /rpc/metrics_snapshot: what GET /v1/metrics serves in Prometheus
-- format: calls per function and status, duration histograms, how fresh the
-- daily summary is and how much usage waits to be folded into it (the
-- refresh's lag in rows), and the usage queue: the lag of the consumer's
-- latest batch, rejections and dead letters. Admins and the service role only.
create or replace function platform.metrics_snapshot()
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  -- Histogram bucket bounds in milliseconds (Prometheus `le`).
  v_bounds numeric[] := array[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
  v_refreshed timestamptz;
  v_queue record;
begin
  if not (platform.is_service_role() or platform.is_admin()) then
    perform platform.fail('PT403', 'forbidden', 'only admins read the metrics');
  end if;
  select s.refreshed_at into v_refreshed from analytics.summary_state s where s.name = 'daily_token_summary';
  select m.recorded_at, (m.details ->> 'lag_ms')::numeric as lag_ms into v_queue
    from telemetry.execution_metrics m
   where m.function_name = 'usage_queue_consumer'
   order by m.id desc limit 1;
  return jsonb_build_object(
    'queue_last_batch_at', extract(epoch from v_queue.recorded_at),
    'queue_lag_ms', v_queue.lag_ms,
    'usage_rejections', coalesce((
      select jsonb_agg(jsonb_build_object('source', r.source, 'code', r.code, 'count', r.n)
                       order by r.source, r.code)
        from (select source, code, count(*) as n from platform.usage_rejections group by 1, 2) r), '[]'),
    'now', extract(epoch from now()),
    'summary_refreshed_at', extract(epoch from v_refreshed),
    'summary_pending_deltas', (select count(*) from analytics.daily_token_deltas),
    'bounds_ms', to_jsonb(v_bounds),
    'calls', coalesce((
      select jsonb_agg(jsonb_build_object('function', c.function_name, 'status', c.status,
                                          'http_status', c.http_status, 'count', c.n)
                       order by c.function_name, c.status, c.http_status)
        from (select m.function_name, m.status, m.http_status, count(*) as n
                from telemetry.execution_metrics m
               group by 1, 2, 3) c), '[]'),
    'durations', coalesce((
      select jsonb_agg(jsonb_build_object(
               'function', d.function_name, 'count', d.n, 'sum_ms', d.total,
               'buckets', d.buckets) order by d.function_name)
        from (select m.function_name, count(*) as n, sum(m.duration_ms) as total,
                     (select jsonb_agg((select count(*) from telemetry.execution_metrics x
                                         where x.function_name = m.function_name and x.duration_ms <= b)
                                       order by b)
                        from unnest(v_bounds) b) as buckets
                from telemetry.execution_metrics m
               group by m.function_name) d), '[]')
  );
end
$$;
revoke execute on function platform.metrics_snapshot() from public, anon, authenticated, service_role;
grant execute on function platform.metrics_snapshot() to authenticated, service_role;
