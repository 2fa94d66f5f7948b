-- Token accounting: the append-only usage ledger, the grants ledger, holds
-- (reservations) taken before LLM calls, and one balance row per user that the
-- RPCs keep equal to grants minus usage.
--
-- The ledgers keep project, session and API key ids as history, without
-- foreign keys: deleting a project must not rewrite or block its billing
-- record. The RPCs check those ids when a row is written.

create table if not exists platform.token_balances (
  user_id uuid primary key references platform.users (id) on delete cascade,
  granted bigint not null default 0
    constraint token_balances_granted_non_negative check (granted >= 0),
  used bigint not null default 0
    constraint token_balances_used_non_negative check (used >= 0),
  -- Tokens held by active reservations.
  reserved bigint not null default 0
    constraint token_balances_reserved_non_negative check (reserved >= 0),
  -- May go negative: usage that already happened is always recorded.
  balance bigint generated always as (granted - used) stored,
  updated_at timestamptz not null default now()
);
comment on table platform.token_balances is
  'Per-user balance, maintained by the RPCs: granted = sum of token_grants, used = sum of token_usage';

create table if not exists platform.token_usage (
  id bigint generated always as identity primary key,
  user_id uuid not null references platform.users (id) on delete cascade,
  api_key_id uuid,
  project_id uuid,
  session_id uuid,
  model_id bigint not null references platform.models (id),
  prompt_tokens bigint not null
    constraint token_usage_prompt_non_negative check (prompt_tokens >= 0),
  completion_tokens bigint not null
    constraint token_usage_completion_non_negative check (completion_tokens >= 0),
  total_tokens bigint not null
    constraint token_usage_total_is_sum check (total_tokens = prompt_tokens + completion_tokens),
  -- At the model's prices when the row was recorded: a later price change
  -- does not rewrite it.
  cost numeric(20, 6) not null
    constraint token_usage_cost_non_negative check (cost >= 0),
  idempotency_key text not null
    constraint token_usage_idempotency_key_length check (length(idempotency_key) between 1 and 255),
  reservation_id uuid,
  -- What recording did to the reservation: part of the first answer, replayed.
  reservation_outcome text
    constraint token_usage_reservation_outcome_known
    check (reservation_outcome in ('settled', 'not_active', 'not_found')),
  -- The balance right after this row, so a retry answers exactly what the
  -- first call answered.
  balance_after bigint not null,
  metadata jsonb not null default '{}'
    constraint token_usage_metadata_object check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  constraint token_usage_idempotent unique (user_id, idempotency_key)
);
comment on table platform.token_usage is 'Append-only ledger of LLM token usage; written only by record_token_usage';
-- Every index is paid by every recorded event, so each one here has a reader.
-- Every writer probes token_usage_idempotent for a retry, once per event. The
-- model foreign key needs model_id indexed: deleting a model, refused while
-- rows name it, must not scan the ledger. The daily summary is kept by a
-- trigger, not read from the ledger by day.
--
-- token_usage_listing_idx serves list_usage_events (a user's events, newest
-- first, a page at a time below a keyset cursor): without it each page sorts
-- all of the user's rows. It begins with user_id too, and a second index on
-- (user_id, ...) is a trap for the probe: on a ledger that is empty or never
-- analysed both indexes cost the same, the planner keeps whichever it
-- considered first (the newer one), and the probe then walks all of a
-- user's rows for each event (pgTAP 271). So it is partial, on a predicate
-- every row meets (ids start at 1) and only list_usage_events states: the
-- planner uses a partial index only for a query whose clauses imply its
-- predicate, and the probe (or a user's deletion) says nothing of id, so no
-- other plan can pick it, whatever the statistics.
create index if not exists token_usage_model_id_idx on platform.token_usage (model_id);
create index if not exists token_usage_listing_idx
  on platform.token_usage (user_id, created_at desc, id desc) where id > 0;

create table if not exists platform.token_grants (
  id bigint generated always as identity primary key,
  user_id uuid not null references platform.users (id) on delete cascade,
  amount bigint not null
    constraint token_grants_amount_range check (amount > 0 and amount <= 1000000000000),
  reason text not null
    constraint token_grants_reason_length check (length(reason) between 1 and 500),
  -- Who granted: an admin's user id, or null for the service role.
  granted_by uuid,
  granted_by_role text not null
    constraint token_grants_granted_by_role_known check (granted_by_role in ('admin', 'service_role')),
  idempotency_key text
    constraint token_grants_idempotency_key_length check (length(idempotency_key) between 1 and 255),
  created_at timestamptz not null default now(),
  -- The balance right after this grant, so a retried grant answers exactly
  -- what the first call answered, as a retried usage event does.
  balance_after bigint,
  constraint token_grants_idempotent unique (user_id, idempotency_key)
);
comment on table platform.token_grants is 'Append-only audit ledger of token grants; written only by grant_user_tokens';
comment on column platform.token_grants.balance_after is
  'The balance right after this grant, so a retry answers as the first call did (null before this column existed)';
create index if not exists token_grants_user_created_idx on platform.token_grants (user_id, created_at);

create table if not exists platform.token_reservations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references platform.users (id) on delete cascade,
  api_key_id uuid,
  tokens bigint not null
    constraint token_reservations_tokens_positive check (tokens > 0),
  status text not null default 'active'
    constraint token_reservations_status_known check (status in ('active', 'settled', 'released', 'expired')),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  closed_at timestamptz,
  usage_id bigint,
  constraint token_reservations_expiry_after_creation check (expires_at > created_at),
  constraint token_reservations_closed_when_not_active check ((status = 'active') = (closed_at is null))
);
create index if not exists token_reservations_active_user_idx
  on platform.token_reservations (user_id) where status = 'active';
create index if not exists token_reservations_active_expiry_idx
  on platform.token_reservations (expires_at) where status = 'active';

-- The ledgers are append-only for everyone, the service role included.
create or replace function platform.refuse_ledger_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'PT409',
    message = format('%s is an append-only ledger', tg_table_name),
    hint = 'ledger_is_append_only';
end
$$;
revoke execute on function platform.refuse_ledger_update() from public, anon, authenticated, service_role;

create or replace trigger token_usage_append_only before update on platform.token_usage
  for each row execute function platform.refuse_ledger_update();
create or replace trigger token_grants_append_only before update on platform.token_grants
  for each row execute function platform.refuse_ledger_update();

alter table platform.token_balances enable row level security;
alter table platform.token_usage enable row level security;
alter table platform.token_grants enable row level security;
alter table platform.token_reservations enable row level security;

revoke all on platform.token_balances, platform.token_usage, platform.token_grants,
  platform.token_reservations from public, anon, authenticated, service_role;
grant select on platform.token_balances, platform.token_usage, platform.token_grants,
  platform.token_reservations to authenticated;
-- The service role reads everything; it writes through the RPCs like everyone
-- else, so the balance can never drift from the ledgers.
grant select on platform.token_balances, platform.token_usage, platform.token_grants,
  platform.token_reservations to service_role;

drop policy if exists "users read their balance, admins read all" on platform.token_balances;
create policy "users read their balance, admins read all" on platform.token_balances
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));

drop policy if exists "users read their usage, admins read all" on platform.token_usage;
create policy "users read their usage, admins read all" on platform.token_usage
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));

drop policy if exists "users read their grants, admins read all" on platform.token_grants;
create policy "users read their grants, admins read all" on platform.token_grants
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));

drop policy if exists "users read their reservations, admins read all" on platform.token_reservations;
create policy "users read their reservations, admins read all" on platform.token_reservations
  for select to authenticated
  using (user_id = (select auth.uid()) or (select platform.is_admin()));
