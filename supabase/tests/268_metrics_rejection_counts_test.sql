-- metrics_snapshot's usage_rejections: counted per (source, code) by the
-- statements that add and remove rejections (usage_rejection_counts), so a
-- scrape reads one row per reason, never the rejections themselves, and
-- still equals a count of the table from scratch.
begin;
select plan(7);

select tests.create_user('rc-alice@example.test') as alice \gset
select tests.grant_tokens(:'alice', 10000);

-- The counters against a from-scratch count of the table, as the snapshot
-- lists them.
create function pg_temp.counted_from_scratch() returns jsonb
language sql as $$
  select coalesce(jsonb_agg(jsonb_build_object('source', r.source, 'code', r.code, 'count', r.n)
                            order by r.source, r.code), '[]')
    from (select source, code, count(*) as n from platform.usage_rejections group by 1, 2) r
$$;
create function pg_temp.msg(p_key text, p_model text) returns jsonb
language sql as $$
  select jsonb_build_object('user_id', current_setting('rc.alice')::uuid,
    'event', jsonb_build_object('idempotency_key', p_key, 'model', p_model,
                                'prompt_tokens', 10, 'completion_tokens', 5))
$$;
select set_config('rc.alice', :'alice', false);
-- The helpers above are called under the API roles below; functions are not
-- executable by PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

-- Rejections the way the queue's RPCs add them: refused events, a refusal
-- delivered again (kept once), dead letters.
select tests.authenticate_as_service_role();
select platform.record_queued_usage(jsonb_build_array(
  pg_temp.msg('rc-1', 'no-such-model'), pg_temp.msg('rc-2', 'no-such-model'),
  pg_temp.msg('rc-3', 'gpt-4o-mini'), pg_temp.msg('rc-1', 'no-such-model'))) \g /dev/null
select platform.record_queued_usage(jsonb_build_array(pg_temp.msg('rc-2', 'no-such-model'))) \g /dev/null
select platform.record_usage_dead_letters(jsonb_build_array(pg_temp.msg('rc-4', 'gpt-4o-mini'),
  pg_temp.msg('rc-5', 'gpt-4o-mini')), null) \g /dev/null
select tests.clear_authentication();

select is(
  (select jsonb_agg(r - 'source' order by r ->> 'code') from jsonb_array_elements(pg_temp.counted_from_scratch()) r
    where r ->> 'code' in ('unknown_model', 'dead_lettered')),
  '[{"code": "dead_lettered", "count": 2}, {"code": "unknown_model", "count": 2}]'::jsonb,
  'the fixtures made two refusals (one delivered twice, kept once) and two dead letters');
select tests.authenticate_as_service_role();
select is(platform.metrics_snapshot() -> 'usage_rejections', pg_temp.counted_from_scratch(),
  'the snapshot''s rejections equal a count of the table from scratch');

-- Removing rejections (an operator cleaning up) takes them off the counters.
select tests.clear_authentication();
delete from platform.usage_rejections where user_id = :'alice' and idempotency_key = 'rc-4';
select tests.authenticate_as_service_role();
select is(platform.metrics_snapshot() -> 'usage_rejections', pg_temp.counted_from_scratch(),
  'a removed rejection is no longer counted');
select is(
  (select (r ->> 'count')::int from jsonb_array_elements(platform.metrics_snapshot() -> 'usage_rejections') r
    where r ->> 'code' = 'dead_lettered' and r ->> 'source' = 'dead_letter'),
  1 + (select count(*)::int from platform.usage_rejections
        where code = 'dead_lettered' and user_id <> :'alice'),
  'the dead letters left: one of ours');

-- A scrape reads the counters, not the rejections: with 20,000 more of them
-- it reads no rejection at all. pg_stat_xact_user_tables counts this
-- transaction's reads.
select tests.clear_authentication();
insert into platform.usage_rejections (user_id, idempotency_key, source, code, message, event)
select :'alice', 'bulk-' || g, 'queue', 'unknown_model', 'unknown model', '{}'
  from generate_series(1, 20000) g;
create temporary table reads_before as
select relid, seq_scan + coalesce(idx_scan, 0) as scans
  from pg_stat_xact_user_tables where relid = 'platform.usage_rejections'::regclass;
select tests.authenticate_as_service_role();
select platform.metrics_snapshot() -> 'usage_rejections' as scraped \gset
select tests.clear_authentication();
select is(
  (select s.seq_scan + coalesce(s.idx_scan, 0) - coalesce(b.scans, 0)
     from pg_stat_xact_user_tables s left join reads_before b using (relid)
    where s.relid = 'platform.usage_rejections'::regclass),
  0::bigint, 'a scrape does not read the rejections');
select is(:'scraped'::jsonb, pg_temp.counted_from_scratch(), 'and still counts all 20,000 more');

-- Nobody reads or writes the counters directly.
select tests.authenticate_as_service_role();
select throws_ok($$ select * from platform.usage_rejection_counts $$, '42501',
  'permission denied for table usage_rejection_counts', 'the service role cannot read the counters directly');

select * from finish();
rollback;
