-- metrics_snapshot: counts per function and status, cumulative duration
-- buckets, summary freshness, the queue's lag; admins and the service role
-- only. Its cost does not grow with history: calls and durations come from
-- the lifetime totals, and the minute cells (however many) are not read.
begin;
select plan(15);

delete from telemetry.execution_metrics;
delete from telemetry.execution_totals;
delete from telemetry.queue_batches;
select tests.create_user('metrics-admin@example.com', 'admin') as admin \gset
select tests.create_user('metrics-dev@example.com') as developer \gset

select tests.authenticate_as_service_role();
select platform.record_execution_metric('usage_record', 'ok', 3, 201, 'r1');
select platform.record_execution_metric('usage_record', 'ok', 40, 201, 'r2');
select platform.record_execution_metric('usage_record', 'error', 700, 422, 'r3');
select platform.refresh_daily_token_summary();

select is(
  (select sum((c ->> 'count')::int) from jsonb_array_elements(platform.metrics_snapshot() -> 'calls') c
    where c ->> 'function' = 'usage_record' and c ->> 'status' = 'ok'),
  2::bigint, 'calls are counted per function and status');
select is(
  (select d -> 'buckets' from jsonb_array_elements(platform.metrics_snapshot() -> 'durations') d
    where d ->> 'function' = 'usage_record'),
  '[1, 1, 1, 2, 2, 2, 2, 3, 3, 3]'::jsonb, 'duration buckets are cumulative (le 5, 10, ... 5000 ms)');
select is(platform.metrics_snapshot() -> 'bounds_ms', '[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]'::jsonb,
  'the bucket bounds are reported');
select is(
  (select (d ->> 'sum_ms')::numeric from jsonb_array_elements(platform.metrics_snapshot() -> 'durations') d
    where d ->> 'function' = 'usage_record'),
  743::numeric, 'the duration sum is kept for the average');
select is(
  (select (c ->> 'count')::int from jsonb_array_elements(platform.metrics_snapshot() -> 'calls') c
    where c ->> 'function' = 'refresh_daily_token_summary' and c ->> 'status' = 'ok'),
  1, 'the summary refresh counts its own runs');
select ok((platform.metrics_snapshot() ->> 'summary_refreshed_at') is not null, 'the last summary refresh is reported');
select is(platform.metrics_snapshot() -> 'summary_pending_deltas', '0'::jsonb,
  'right after a refresh no usage waits to be folded');
select tests.authenticate_as(:'developer');
select tests.grant_tokens(:'developer', 100);
select platform.record_token_usage('gpt-4o-mini', 5, 5, 'pending-1') \g /dev/null
select platform.record_token_usage('gpt-4o-mini', 5, 5, 'pending-2') \g /dev/null
select tests.authenticate_as_service_role();
select is(platform.metrics_snapshot() -> 'summary_pending_deltas', '2'::jsonb,
  'usage recorded since is reported as pending deltas (the refresh''s lag in rows)');

-- The queue's lag is the latest consumed batch's.
select tests.clear_authentication();
insert into telemetry.queue_batches (recorded_at, messages, lag_ms, duration_ms)
values (now() - interval '1 minute', 3, 900, 1), (now(), 5, 1500, 1);
select tests.authenticate_as_service_role();
select is(platform.metrics_snapshot() -> 'queue_lag_ms', '1500'::jsonb,
  'the queue lag is the latest batch''s');

-- Counters never go down: pruning the minute cells leaves the totals.
select tests.clear_authentication();
insert into telemetry.execution_metrics (minute, function_name, status, http_status, calls, sum_ms, max_ms, buckets)
select date_trunc('minute', now()) - interval '30 days' - m * interval '1 minute', 'usage_record', 'ok', 201, 1, 1, 1,
       '{1,1,1,1,1,1,1,1,1,1}'
  from generate_series(1, 20000) m;
select tests.authenticate_as_service_role();
select platform.prune_telemetry() \g /dev/null
select is(
  (select (c ->> 'count')::int from jsonb_array_elements(platform.metrics_snapshot() -> 'calls') c
    where c ->> 'function' = 'usage_record' and c ->> 'status' = 'ok'),
  2, 'pruned history leaves the counters where they were');

-- A scrape reads the totals, not the history: with 20,000 more minute cells,
-- it reads no minute cell at all, and each totals row at most twice (calls,
-- then durations). pg_stat_xact_user_tables counts this transaction's reads.
select tests.clear_authentication();
insert into telemetry.execution_metrics (minute, function_name, status, http_status, calls, sum_ms, max_ms, buckets)
select date_trunc('minute', now()) - m * interval '1 minute', 'usage_record', 'ok', 201, 1, 1, 1,
       '{1,1,1,1,1,1,1,1,1,1}'
  from generate_series(1, 20000) m;
create temporary table reads_before as
select relid::regclass::text as relation, seq_scan + coalesce(idx_scan, 0) as scans,
       seq_tup_read + coalesce(idx_tup_fetch, 0) as tuples
  from pg_stat_xact_user_tables where schemaname = 'telemetry';
select tests.authenticate_as_service_role();
select platform.metrics_snapshot() \g /dev/null
select tests.clear_authentication();
select is(
  (select s.seq_scan + coalesce(s.idx_scan, 0) - coalesce(b.scans, 0)
     from pg_stat_xact_user_tables s left join reads_before b on b.relation = s.relid::regclass::text
    where s.relid = 'telemetry.execution_metrics'::regclass),
  0::bigint, 'a scrape does not read the minute cells');
select cmp_ok(
  (select s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) - coalesce(b.tuples, 0)
     from pg_stat_xact_user_tables s left join reads_before b on b.relation = s.relid::regclass::text
    where s.relid = 'telemetry.execution_totals'::regclass),
  '<=', 2 * (select count(*) from telemetry.execution_totals),
  'a scrape reads each totals row at most twice');

select tests.authenticate_as(:'admin');
select ok(jsonb_array_length(platform.metrics_snapshot() -> 'calls') >= 2, 'an admin reads the metrics');

select tests.authenticate_as(:'developer');
select throws_ok($$ select platform.metrics_snapshot() $$, 'PT403', 'only admins read the metrics',
  'a developer does not');
select tests.authenticate_as_anon();
select throws_ok($$ select platform.metrics_snapshot() $$, '42501',
  'permission denied for function metrics_snapshot', 'anon cannot even call it');

select * from finish();
rollback;
