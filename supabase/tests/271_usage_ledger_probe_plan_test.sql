-- Every writer of usage looks for a retry with one probe per event on
-- (user_id, idempotency_key). Its plan must not depend on statistics: a
-- generic plan made while the ledger was empty or never analysed is kept for
-- the session (record_usage_events forces generic plans), and a probe through
-- another index beginning with user_id walks all of that user's rows. So the
-- unique index is the only one that begins with user_id, and the probe uses
-- it on an empty, never-analysed ledger and on a large one alike.
begin;
select plan(4);

select is(
  (select array_agg(i.indexrelid::regclass::text order by 1)
     from pg_index i
     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
    where i.indrelid = 'platform.token_usage'::regclass and a.attname = 'user_id'),
  array['platform.token_usage_idempotent'],
  'the only index of the ledger that begins with user_id is the (user_id, idempotency_key) one');

-- The plan of the probe as the writers run it: generic, parameters unknown.
create function pg_temp.probe_plan() returns text
language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  set local plan_cache_mode = force_generic_plan;
  for v_line in execute 'explain execute ledger_probe(gen_random_uuid(), ''k'')' loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end
$$;
prepare ledger_probe(uuid, text) as
  select * from platform.token_usage u where u.user_id = $1 and u.idempotency_key = $2;

-- A ledger as a fresh deployment has it: empty, its statistics gone.
alter table platform.token_usage disable trigger token_usage_deltas_on_delete;
delete from platform.token_usage;
alter table platform.token_usage enable trigger token_usage_deltas_on_delete;
select matches(pg_temp.probe_plan(), 'token_usage_idempotent',
  'on an empty ledger the probe uses the unique index');

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

select * from finish();
rollback;
