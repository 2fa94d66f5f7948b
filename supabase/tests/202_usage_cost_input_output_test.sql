-- The cost of a usage event: prompt tokens at the model's input price plus
-- completion tokens at its output price, per 1,000 tokens, the sum rounded to
-- 6 decimals. The single-event path prices in platform.usage_event_plan, the
-- batch and queued paths in platform.record_usage_events: each is checked here.
begin;
select plan(7);

select tests.create_user('alice@example.test') as alice \gset
select tests.grant_tokens(:'alice', 100000);
insert into platform.models (name, provider, context_size, input_cost_per_1k_tokens, output_cost_per_1k_tokens)
values ('split-price', 'acme', 8192, 0.500000, 1.500000),
       ('tiny-price', 'acme', 8192, 0.000300, 0.000300),
       ('free-input', 'acme', 8192, 0, 2.000000);

select tests.authenticate_as(:'alice');
select is((platform.record_token_usage('split-price', 1000, 500, 'c-1') ->> 'cost')::numeric, 1.25,
  '1000 prompt tokens at 0.5 and 500 completion tokens at 1.5 per 1k cost 0.5 + 0.75');
select is((platform.record_token_usage('split-price', 500, 1000, 'c-2') ->> 'cost')::numeric, 1.75,
  'the same total split the other way costs what its parts do, not total × one price');
select is((platform.record_token_usage('free-input', 10000, 0, 'c-3') ->> 'cost')::numeric, 0::numeric,
  'a free input price makes a prompt-only event cost nothing');
select is((platform.record_token_usage('tiny-price', 1, 1, 'c-4') ->> 'cost')::numeric, 0.000001,
  'the sum is rounded once to 6 decimals (each part alone, 0.0000003, would round to 0)');
select is(
  (select jsonb_agg((r ->> 'cost')::numeric order by (r ->> 'index')::int)
     from jsonb_array_elements(platform.record_token_usage_batch(jsonb_build_array(
       jsonb_build_object('model', 'split-price', 'prompt_tokens', 2000, 'completion_tokens', 0, 'idempotency_key', 'b-1'),
       jsonb_build_object('model', 'split-price', 'prompt_tokens', 0, 'completion_tokens', 2000, 'idempotency_key', 'b-2')
     ))::jsonb -> 'results') r),
  '[1.0, 3.0]'::jsonb,
  'a batch prices each event by its own prompt and completion tokens');

select tests.authenticate_as_service_role();
select platform.record_queued_usage(jsonb_build_array(jsonb_build_object('user_id', :'alice', 'event',
  jsonb_build_object('model', 'split-price', 'prompt_tokens', 100, 'completion_tokens', 100,
                     'idempotency_key', 'q-1')))) \g /dev/null
select is((select cost from platform.token_usage where user_id = :'alice' and idempotency_key = 'q-1'), 0.2,
  'queued usage is priced the same way');

select tests.clear_authentication();
select is_empty(
  $$select t.id from platform.token_usage t join platform.models m on m.id = t.model_id
     where t.cost <> round((t.prompt_tokens * m.input_cost_per_1k_tokens
                            + t.completion_tokens * m.output_cost_per_1k_tokens) / 1000, 6)$$,
  'every ledger row holds the cost its answer gave');

select * from finish();
rollback;
