-- analytics.daily_token_summary: usage per (UTC day, user, model), maintained
-- incrementally so that a refresh costs in proportion to what was recorded
-- since the last one, not to all history (as recomputing a materialized view
-- would):
--
--   * every change to platform.token_usage appends its per-(day, user, model)
--     difference to analytics.daily_token_deltas, in the writer's own
--     transaction (a statement trigger, so a batch insert appends once per
--     key, not once per row);
--   * refresh_daily_token_summary (the edge's cron trigger) folds the deltas
--     into analytics.daily_token_rollup with DELETE ... RETURNING and an
--     upsert in one transaction, so a failed run leaves every delta for the
--     next one;
--   * analytics.daily_token_summary is a view of rollup plus pending deltas:
--     exact at every moment, not only after a refresh. get_usage_overview
--     reads it.
--
-- Late rows (a transaction that began before a refresh and commits after it,
-- whatever its created_at) are not missed: their deltas become visible when
-- they commit and the next refresh folds them. Corrections (usage rows removed
-- when their user is deleted) append negative deltas.

create table if not exists analytics.daily_token_rollup (
  user_id uuid not null,
  day date not null,
  model_id bigint not null,
  requests bigint not null,
  prompt_tokens bigint not null,
  completion_tokens bigint not null,
  total_tokens bigint not null,
  cost numeric not null,
  -- Serves get_usage_overview's "one user over a range of days".
  primary key (user_id, day, model_id)
);
comment on table analytics.daily_token_rollup is
  'Usage per (UTC day, user, model) folded by refresh_daily_token_summary; add daily_token_deltas for the exact figure';
-- Keys whose last row was removed are deleted at the end of each refresh.
create index if not exists daily_token_rollup_empty_idx on analytics.daily_token_rollup (user_id) where requests = 0;

create table if not exists analytics.daily_token_deltas (
  user_id uuid not null,
  day date not null,
  model_id bigint not null,
  -- Negative when ledger rows were removed.
  requests bigint not null,
  prompt_tokens bigint not null,
  completion_tokens bigint not null,
  total_tokens bigint not null,
  cost numeric not null
);
comment on table analytics.daily_token_deltas is
  'Changes to token_usage not yet folded into daily_token_rollup; emptied by refresh_daily_token_summary';
create index if not exists daily_token_deltas_user_day_idx on analytics.daily_token_deltas (user_id, day);

-- When the summary was last refreshed (metrics_snapshot reports it), one row
-- per summary, written by refresh_daily_token_summary.
create table if not exists analytics.summary_state (
  name text primary key,
  refreshed_at timestamptz not null
);

-- None of these tables is for anyone to read or write directly: users read
-- their own figures through get_usage_overview, the service role reads the
-- view.
alter table analytics.daily_token_rollup enable row level security;
alter table analytics.daily_token_deltas enable row level security;
alter table analytics.summary_state enable row level security;
revoke all on analytics.daily_token_rollup, analytics.daily_token_deltas
  from public, anon, authenticated, service_role;
grant select on analytics.daily_token_rollup, analytics.daily_token_deltas to service_role;
revoke all on analytics.summary_state from public, anon, authenticated, service_role;
grant select on analytics.summary_state to service_role;
drop policy if exists "the service role reads the rollup" on analytics.daily_token_rollup;
create policy "the service role reads the rollup" on analytics.daily_token_rollup
  for select to service_role using (true);
drop policy if exists "the service role reads the deltas" on analytics.daily_token_deltas;
create policy "the service role reads the deltas" on analytics.daily_token_deltas
  for select to service_role using (true);

create or replace function analytics.append_usage_deltas() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into analytics.daily_token_deltas
      (user_id, day, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost)
    select n.user_id, (n.created_at at time zone 'UTC')::date, n.model_id, count(*),
           sum(n.prompt_tokens), sum(n.completion_tokens), sum(n.total_tokens), sum(n.cost)
      from added_rows n
     group by 1, 2, 3;
  else
    insert into analytics.daily_token_deltas
      (user_id, day, model_id, requests, prompt_tokens, completion_tokens, total_tokens, cost)
    select o.user_id, (o.created_at at time zone 'UTC')::date, o.model_id, -count(*),
           -sum(o.prompt_tokens), -sum(o.completion_tokens), -sum(o.total_tokens), -sum(o.cost)
      from removed_rows o
     group by 1, 2, 3;
  end if;
  return null;
end
$$;
revoke execute on function analytics.append_usage_deltas() from public, anon, authenticated, service_role;

create or replace trigger token_usage_deltas_on_insert after insert on platform.token_usage
  referencing new table as added_rows
  for each statement execute function analytics.append_usage_deltas();
create or replace trigger token_usage_deltas_on_delete after delete on platform.token_usage
  referencing old table as removed_rows
  for each statement execute function analytics.append_usage_deltas();

create or replace view analytics.daily_token_summary as
select s.day, s.user_id, s.model_id, m.name as model, s.requests, s.prompt_tokens,
       s.completion_tokens, s.total_tokens, s.cost
  from (select x.day, x.user_id, x.model_id,
               sum(x.requests)::bigint as requests,
               sum(x.prompt_tokens)::bigint as prompt_tokens,
               sum(x.completion_tokens)::bigint as completion_tokens,
               sum(x.total_tokens)::bigint as total_tokens,
               sum(x.cost) as cost
          from (select r.day, r.user_id, r.model_id, r.requests, r.prompt_tokens,
                       r.completion_tokens, r.total_tokens, r.cost
                  from analytics.daily_token_rollup r
                union all
                select d.day, d.user_id, d.model_id, d.requests, d.prompt_tokens,
                       d.completion_tokens, d.total_tokens, d.cost
                  from analytics.daily_token_deltas d) x
         group by x.day, x.user_id, x.model_id) s
  join platform.models m on m.id = s.model_id
 where s.requests <> 0;
comment on view analytics.daily_token_summary is
  'Usage per (UTC day, user, model): the folded rollup plus deltas not yet folded, so always exact';
-- A view is not guarded by row-level security (it reads the tables as its
-- owner), so only the service role reads it directly.
revoke all on analytics.daily_token_summary from public, anon, authenticated, service_role;
grant select on analytics.daily_token_summary to service_role;
