-- A price change never rewrites the cost of usage already recorded: the
-- ledger keeps the cost computed when each event was recorded, the daily
-- summary and the overview sum those costs, and only events recorded after
-- the change are priced at the new prices.
begin;
select plan(10);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 100000);

select tests.authenticate_as(:'adam');
select platform.upsert_model('repriced', 'acme', 8192, 0.5, 1.5);

-- 1000 prompt tokens at 0.5 and 500 completion tokens at 1.5 per 1k: 1.25.
select tests.authenticate_as(:'alice');
select platform.record_token_usage('repriced', 1000, 500, 'old-price') as first \gset
select is((:'first'::jsonb ->> 'cost')::numeric, 1.25, 'the event is priced at the prices of its time');
-- One event folded into the rollup, so both the folded and the pending parts
-- of the summary are checked below.
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary();

-- The admin doubles both prices.
select tests.authenticate_as(:'adam');
select platform.upsert_model('repriced', 'acme', 8192, 1.0, 3.0);

select tests.clear_authentication();
select is((select cost from platform.token_usage where user_id = :'alice' and idempotency_key = 'old-price'),
  1.25::numeric, 'the ledger row keeps its cost after the price change');
select is((select cost from analytics.daily_token_summary s where s.user_id = :'alice' and s.model = 'repriced'),
  1.25::numeric, 'the daily summary keeps the recorded cost');
select tests.authenticate_as(:'alice');
select is((platform.get_usage_overview() -> 'totals' ->> 'cost')::numeric, 1.25,
  'the overview keeps the recorded cost');
select is(platform.record_token_usage('repriced', 1000, 500, 'old-price') - 'replayed', :'first'::jsonb - 'replayed',
  'a retry of the old event answers the old cost, not a repricing');

-- A new event uses the new prices: 1000 × 1.0 / 1000 + 500 × 3.0 / 1000 = 2.5.
select is((platform.record_token_usage('repriced', 1000, 500, 'new-price') ->> 'cost')::numeric, 2.5,
  'a new event is priced at the new prices');
select tests.clear_authentication();
select results_eq(
  $$select idempotency_key, cost from platform.token_usage where user_id = '$$ || :'alice' || $$' order by id$$,
  $$values ('old-price'::text, 1.25::numeric), ('new-price'::text, 2.5::numeric)$$,
  'the ledger holds each event at the prices of its own time');
select is((select cost from analytics.daily_token_summary s where s.user_id = :'alice' and s.model = 'repriced'),
  3.75::numeric, 'the summary adds the new event at its own cost');
select tests.authenticate_as_service_role();
select platform.refresh_daily_token_summary();
select tests.clear_authentication();
select is((select cost from analytics.daily_token_rollup r
             join platform.models m on m.id = r.model_id
            where r.user_id = :'alice' and m.name = 'repriced'),
  3.75::numeric, 'folding the summary again does not reprice either event');
select is(tests.summary_mismatches('analytics.daily_token_summary', :'alice'), 0::bigint,
  'the summary equals the ledger');

select * from finish();
rollback;
