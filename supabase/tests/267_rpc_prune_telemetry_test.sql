-- platform.prune_telemetry (service role; the Worker's cron calls it): minute
-- cells, queue batches and user mirrors older than telemetry.retention() are
-- deleted, at most 20,000 of each per call; newer ones and the lifetime
-- totals stay.
begin;
select plan(11);

delete from telemetry.execution_metrics;
delete from telemetry.queue_batches;
delete from telemetry.user_mirrors;
select tests.create_user('prune-alice@example.test') as alice \gset

select is(telemetry.retention(), interval '7 days', 'telemetry is kept for 7 days');

-- 20,005 old minute cells, 3 recent ones; old and recent batches and mirrors.
insert into telemetry.execution_metrics (minute, function_name, status, http_status, calls, sum_ms, max_ms, buckets)
select date_trunc('minute', now()) - interval '8 days' - m * interval '1 minute', 'me', 'error', 401, 1, 1, 1,
       '{1,1,1,1,1,1,1,1,1,1}'::bigint[]
  from generate_series(0, 20004) m
union all
select date_trunc('minute', now()) - m * interval '1 minute', 'me', 'error', 401, 1, 1, 1, '{1,1,1,1,1,1,1,1,1,1}'
  from generate_series(0, 2) m;
insert into telemetry.queue_batches (recorded_at, messages, duration_ms)
values (now() - interval '8 days', 1, 1), (now() - interval '6 days', 1, 1);
insert into telemetry.user_mirrors (recorded_at, user_id, source, created)
values (now() - interval '8 days', :'alice', 'jit', true), (now(), :'alice', 'jit', false);

select tests.authenticate_as_service_role();
select is(platform.prune_telemetry() - 'before',
  '{"execution_metrics": 20000, "queue_batches": 1, "user_mirrors": 1, "more": true}'::jsonb,
  'one call deletes at most 20,000 rows of a table, and says more are left');
select is(platform.prune_telemetry() - 'before',
  '{"execution_metrics": 5, "queue_batches": 0, "user_mirrors": 0, "more": false}'::jsonb,
  'the next call deletes the rest');
select is(platform.prune_telemetry() - 'before',
  '{"execution_metrics": 0, "queue_batches": 0, "user_mirrors": 0, "more": false}'::jsonb,
  'then there is nothing to prune');
select tests.clear_authentication();
select is((select count(*)::int from telemetry.execution_metrics), 3, 'recent minute cells stay');
select is((select count(*)::int from telemetry.queue_batches), 1, 'recent queue batches stay');
select is((select count(*)::int from telemetry.user_mirrors), 1, 'recent user mirrors stay');

-- Only the service role prunes.
select tests.authenticate_as_anon();
select throws_ok($$select platform.prune_telemetry()$$,
  '42501', 'permission denied for function prune_telemetry', 'anon may not prune');
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.prune_telemetry()$$,
  '42501', 'permission denied for function prune_telemetry', 'a signed-in user may not prune');
select tests.clear_authentication();
select throws_ok($$select platform.prune_telemetry()$$,
  'PT403', 'only the service role prunes telemetry', 'a caller without service-role claims is refused');
select is(tests.refusal_code($$select platform.prune_telemetry()$$), 'forbidden',
  'the refusal carries the code forbidden');

select * from finish();
rollback;
