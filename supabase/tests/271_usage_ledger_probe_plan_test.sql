-- Every writer of usage looks for a retry with one probe per event on
-- (user_id, idempotency_key). Its plan must not depend on statistics: a
-- generic plan made while the ledger was empty or never analysed is kept for
-- the session (record_usage_events forces generic plans), and a probe through
-- another index beginning with user_id walks all of that user's rows. On such
-- a ledger two indexes on (user_id, ...) cost the same and the planner keeps
-- the newer one. So the unique index is the only one beginning with user_id
-- that any query may use; the listing's (list_usage_events) is partial, on a
-- predicate only that function states. The probe uses the unique index on an
-- empty, never-analysed ledger and on a large one alike, and the listing
-- uses its own.
begin;
select plan(7);

select is(
  (select array_agg(i.indexrelid::regclass::text order by 1)
     from pg_index i
     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
    where i.indrelid = 'platform.token_usage'::regclass and a.attname = 'user_id' and i.indpred is null),
  array['platform.token_usage_idempotent'],
  'the only full index of the ledger that begins with user_id is the (user_id, idempotency_key) one');
select is(
  (select array_agg(pg_get_expr(i.indpred, i.indrelid) order by 1)
     from pg_index i
     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
    where i.indrelid = 'platform.token_usage'::regclass and a.attname = 'user_id' and i.indpred is not null),
  array['(id > 0)'],
  'the other, the listing''s, is partial on id > 0, which only list_usage_events states');

-- The plan of the probe as the writers run it: generic, parameters unknown.
-- Prepared afresh for each look, as a new session would plan it: a plan
-- kept from an earlier look would hide what the statistics now choose.
create function pg_temp.probe_plan() returns text
language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  set local plan_cache_mode = force_generic_plan;
  execute 'prepare ledger_probe(uuid, text) as select * from platform.token_usage u'
       || ' where u.user_id = $1 and u.idempotency_key = $2';
  for v_line in execute 'explain execute ledger_probe(gen_random_uuid(), ''k'')' loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  execute 'deallocate ledger_probe';
  return v_plan;
end
$$;

-- list_usage_events's read, as it runs: generic, parameters unknown.
create function pg_temp.listing_plan() returns text
language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  set local plan_cache_mode = force_generic_plan;
  for v_line in execute 'explain execute ledger_listing(gen_random_uuid(), now(), 1, 50)' loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end
$$;
grant execute on all functions in schema pg_temp to public;
prepare ledger_listing(uuid, timestamptz, bigint, int) as
  select * from platform.token_usage t
   where t.user_id = $1 and t.id > 0 and (t.created_at, t.id) < ($2, $3)
   order by t.created_at desc, t.id desc
   limit $4 + 1;

-- A ledger as a fresh deployment has it: empty, its statistics gone.
alter table platform.token_usage disable trigger token_usage_deltas_on_delete;
delete from platform.token_usage;
alter table platform.token_usage enable trigger token_usage_deltas_on_delete;
-- Empty, the ledger is either never vacuumed (the planner sizes it at ten
-- pages and the probe takes the unique index) or vacuumed and truncated by
-- autovacuum after earlier rolled-back writes (no pages, where reading the
-- table costs nothing). Which one this file meets depends on when
-- autovacuum last ran, and neither is the danger: that is a probe through
-- another index walking a user's rows. The analyze that follows the
-- ledger's growth invalidates a session's cached plan.
select matches(pg_temp.probe_plan(), 'token_usage_idempotent|Seq Scan on token_usage',
  'on an empty ledger the probe uses the unique index, or reads the empty table');

-- One user with many rows, never analysed since.
select tests.create_user('probe-heavy@example.test') as heavy \gset
insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens, cost,
                                  idempotency_key, balance_after)
select :'heavy', (select id from platform.models order by id limit 1), 1, 1, 2, 0, 'heavy-' || g, 0
  from generate_series(1, 20000) g;
select matches(pg_temp.probe_plan(), 'token_usage_idempotent',
  'with 20,000 rows of one user, not analysed, the probe still uses the unique index');
analyze platform.token_usage;
select matches(pg_temp.probe_plan(), 'token_usage_idempotent', 'and once analysed');
select matches(pg_temp.listing_plan(), 'Index Cond: \(\(user_id = \$1\) AND \(ROW\(created_at, id\) < ROW\(\$2, \$3\)\)\)',
  'the listing reads a page from its own index, starting at the cursor, without a sort');
select doesnt_match(pg_temp.listing_plan(), 'Sort', 'and sorts nothing');

select * from finish();
rollback;
