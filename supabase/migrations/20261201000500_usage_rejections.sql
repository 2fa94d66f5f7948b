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

-- Rejections per (source, code), kept by the statements that add or remove
-- rejections, so that metrics_snapshot reads one row per reason instead of
-- counting the whole table on every scrape. Readable by nobody directly.
create table if not exists platform.usage_rejection_counts (
  source text not null,
  code text not null,
  rejections bigint not null
    constraint usage_rejection_counts_non_negative check (rejections >= 0),
  primary key (source, code)
);
comment on table platform.usage_rejection_counts is
  'Rows of usage_rejections per (source, code), kept by a statement trigger; metrics_snapshot reads it';
alter table platform.usage_rejection_counts enable row level security;
revoke all on platform.usage_rejection_counts from public, anon, authenticated, service_role;

-- One upsert per statement and reason, in key order, so two writers lock the
-- counters they share in the same order and never deadlock.
create or replace function platform.count_usage_rejections() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into platform.usage_rejection_counts as c (source, code, rejections)
    select n.source, n.code, count(*) from added_rows n group by 1, 2 order by 1, 2
    on conflict (source, code) do update set rejections = c.rejections + excluded.rejections;
  else
    update platform.usage_rejection_counts c
       set rejections = c.rejections - o.n
      from (select r.source, r.code, count(*) as n from removed_rows r group by 1, 2 order by 1, 2) o
     where c.source = o.source and c.code = o.code;
  end if;
  return null;
end
$$;
revoke execute on function platform.count_usage_rejections() from public, anon, authenticated, service_role;

create or replace trigger usage_rejections_counted_on_insert after insert on platform.usage_rejections
  referencing new table as added_rows
  for each statement execute function platform.count_usage_rejections();
create or replace trigger usage_rejections_counted_on_delete after delete on platform.usage_rejections
  referencing old table as removed_rows
  for each statement execute function platform.count_usage_rejections();
