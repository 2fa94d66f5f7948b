-- POST /rpc/metrics_snapshot: what GET /v1/metrics serves in Prometheus
-- format: calls per function and status, duration histograms, and how fresh
-- the daily summary is. Admins and the service role only.
create or replace function platform.metrics_snapshot()
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  -- Histogram bucket bounds in milliseconds (Prometheus `le`).
  v_bounds numeric[] := array[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
  v_refreshed timestamptz;
begin
  if not (platform.is_service_role() or platform.is_admin()) then
    perform platform.fail('PT403', 'forbidden', 'only admins read the metrics');
  end if;
  select s.refreshed_at into v_refreshed from analytics.summary_state s where s.name = 'daily_token_summary';
  return jsonb_build_object(
    'now', extract(epoch from now()),
    'summary_refreshed_at', extract(epoch from v_refreshed),
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

revoke execute on function platform.metrics_snapshot() from public, anon;
grant execute on function platform.metrics_snapshot() to authenticated, service_role;
