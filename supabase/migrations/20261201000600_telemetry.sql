-- What the edge functions record about each call and each scheduled run. The
-- edge writes it through platform.record_execution_metric (telemetry is not
-- exposed); admins read it.

create table if not exists telemetry.execution_metrics (
  id bigint generated always as identity primary key,
  function_name text not null
    constraint execution_metrics_function_format check (function_name ~ '^[a-z][a-z0-9_./-]{0,99}$'),
  -- ok: served; error: failed; skipped: a scheduled run that found another running.
  status text not null
    constraint execution_metrics_status_known check (status in ('ok', 'error', 'skipped')),
  http_status smallint
    constraint execution_metrics_http_status_range check (http_status between 100 and 599),
  duration_ms numeric(12, 3) not null
    constraint execution_metrics_duration_non_negative check (duration_ms >= 0),
  request_id text
    constraint execution_metrics_request_id_length check (length(request_id) <= 64),
  details jsonb not null default '{}'
    constraint execution_metrics_details_object check (jsonb_typeof(details) = 'object'),
  recorded_at timestamptz not null default now()
);
create index if not exists execution_metrics_recorded_idx on telemetry.execution_metrics (recorded_at);
create index if not exists execution_metrics_function_recorded_idx
  on telemetry.execution_metrics (function_name, recorded_at);

alter table telemetry.execution_metrics enable row level security;
revoke all on telemetry.execution_metrics from public, anon, authenticated, service_role;
grant select on telemetry.execution_metrics to authenticated, service_role;

drop policy if exists "admins read execution metrics" on telemetry.execution_metrics;
create policy "admins read execution metrics" on telemetry.execution_metrics
  for select to authenticated
  using ((select platform.is_admin()));
