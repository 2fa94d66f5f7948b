-- Queued usage events that can never be recorded (unknown model, unknown user,
-- a key reused for another event...), kept with the reason so the queue
-- consumer acknowledges them instead of retrying forever. Written only by the
-- queue RPCs (record_queued_usage, record_usage_dead_letters).

create table if not exists platform.usage_rejections (
  id bigint generated always as identity primary key,
  user_id uuid not null,
  idempotency_key text not null,
  api_key_id uuid,
  -- 'queue': the consumer's RPC refused the event; 'dead_letter': the queue
  -- gave up after its retries.
  source text not null
    constraint usage_rejections_source_known check (source in ('queue', 'dead_letter')),
  code text not null,
  message text not null,
  event jsonb not null,
  rejected_at timestamptz not null default now(),
  constraint usage_rejections_once unique (user_id, idempotency_key)
);
comment on table platform.usage_rejections is
  'Queued usage events that were not recorded, with the reason; written only by the queue RPCs';

alter table platform.usage_rejections enable row level security;
revoke all on platform.usage_rejections from public, anon, authenticated, service_role;
grant select on platform.usage_rejections to authenticated, service_role;
drop policy if exists "users read their rejections, admins read all" on platform.usage_rejections;
create policy "users read their rejections, admins read all" on platform.usage_rejections
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));
drop policy if exists "the service role reads rejections" on platform.usage_rejections;
create policy "the service role reads rejections" on platform.usage_rejections
  for select to service_role using (true);
