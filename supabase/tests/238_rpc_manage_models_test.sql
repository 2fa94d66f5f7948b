-- platform.upsert_model and platform.deactivate_model: admins (and the
-- service role) create, change and deactivate catalogue models. The table's
-- constraints are the rules; a deactivated model is refused for new usage as
-- any inactive model is, and its row stays for the ledger.
begin;
select plan(45);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 100000);

-- ---------------------------------------------------------------------------
-- An admin creates a model.
select tests.authenticate_as(:'adam');
select platform.upsert_model('acme-chat-1', 'acme', 32768, 0.25, 1.25,
  'https://example.com/acme-chat-1', '{"kind": "chat"}', true) as created \gset
select is(:'created'::jsonb - 'created_at' - 'updated_at',
  '{"name": "acme-chat-1", "provider": "acme", "repo_url": "https://example.com/acme-chat-1",
    "context_size": 32768, "input_cost_per_1k_tokens": 0.250000, "output_cost_per_1k_tokens": 1.250000,
    "metadata": {"kind": "chat"}, "is_active": true, "created": true}'::jsonb,
  'creating a model answers the model as stored and created: true');
select ok((:'created'::jsonb ->> 'created_at') is not null and (:'created'::jsonb ->> 'updated_at') is not null,
  'the answer carries created_at and updated_at');
select tests.clear_authentication();
select results_eq(
  $$select provider, context_size, input_cost_per_1k_tokens, output_cost_per_1k_tokens, is_active
      from platform.models where name = 'acme-chat-1'$$,
  $$values ('acme'::text, 32768, 0.25::numeric, 1.25::numeric, true)$$,
  'the model is in the catalogue with its input and output prices');
select ok(exists (select 1 from jsonb_array_elements(platform.list_models()) m
                   where m ->> 'name' = 'acme-chat-1' and (m ->> 'output_cost_per_1k_tokens')::numeric = 1.25),
  'list_models lists the new model with its prices');

-- The defaults of the optional arguments.
select tests.authenticate_as(:'adam');
select is(platform.upsert_model('acme-embed', 'acme', 512, 0, 0) - 'created_at' - 'updated_at',
  '{"name": "acme-embed", "provider": "acme", "repo_url": null, "context_size": 512,
    "input_cost_per_1k_tokens": 0.000000, "output_cost_per_1k_tokens": 0.000000, "metadata": {},
    "is_active": true, "created": true}'::jsonb,
  'repo_url, metadata and is_active default to none, {} and active');

-- ---------------------------------------------------------------------------
-- An admin changes a model: every field as given.
select tests.clear_authentication();
-- Back-date the last change (past the trigger that stamps every update).
alter table platform.models disable trigger models_touch_updated_at;
update platform.models set updated_at = '2000-01-01' where name = 'acme-chat-1';
alter table platform.models enable trigger models_touch_updated_at;
select tests.authenticate_as(:'adam');
select is((platform.upsert_model('acme-chat-1', 'acme', 32768, 0.25, 1.25,
            'https://example.com/acme-chat-1', '{"kind": "chat"}', true)) -> 'created',
  'false'::jsonb, 'the same description again is not a creation');
select tests.clear_authentication();
select is((select updated_at from platform.models where name = 'acme-chat-1'), '2000-01-01'::timestamptz,
  'a call that changes nothing writes nothing (updated_at stays)');
select tests.authenticate_as(:'adam');
select platform.upsert_model('acme-chat-1', 'acme labs', 65536, 0.3, 1.5) as changed \gset
select is(:'changed'::jsonb - 'created_at' - 'updated_at',
  '{"name": "acme-chat-1", "provider": "acme labs", "repo_url": null, "context_size": 65536,
    "input_cost_per_1k_tokens": 0.300000, "output_cost_per_1k_tokens": 1.500000, "metadata": {},
    "is_active": true, "created": false}'::jsonb,
  'a change replaces the description: fields left out take their defaults');
select tests.clear_authentication();
select is((select updated_at from platform.models where name = 'acme-chat-1'), now(),
  'a real change moves updated_at');
select is((select count(*) from platform.models where name = 'acme-chat-1'), 1::bigint,
  'a change updates the model in place');

-- The service role manages models too.
select tests.authenticate_as_service_role();
select is(platform.upsert_model('svc-model', 'acme', 1024, 0.1, 0.2) -> 'created', 'true'::jsonb,
  'the service role creates a model');
select is(platform.deactivate_model('svc-model') -> 'is_active', 'false'::jsonb,
  'the service role deactivates a model');

-- ---------------------------------------------------------------------------
-- Who may not.
select tests.authenticate_as(:'alice');
select throws_ok($$select platform.upsert_model('alice-model', 'acme', 1024, 0, 0)$$,
  'PT403', 'only admins manage models', 'a developer cannot create a model');
select is(tests.refusal_code($$select platform.upsert_model('acme-chat-1', 'acme', 1024, 0, 0)$$), 'forbidden',
  'a developer cannot change a price: forbidden');
select throws_ok($$select platform.deactivate_model('acme-chat-1')$$,
  'PT403', 'only admins manage models', 'a developer cannot deactivate a model');
select tests.authenticate_as_anon();
select throws_ok($$select platform.upsert_model('anon-model', 'acme', 1024, 0, 0)$$,
  '42501', 'permission denied for function upsert_model', 'anon cannot call upsert_model');
select throws_ok($$select platform.deactivate_model('acme-chat-1')$$,
  '42501', 'permission denied for function deactivate_model', 'anon cannot call deactivate_model');
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.model_answer(m) from platform.models m limit 1$$,
  '42501', 'permission denied for function model_answer', 'the answer helper is not callable');
select tests.clear_authentication();
select is((select count(*) from platform.models where name in ('alice-model', 'anon-model')), 0::bigint,
  'no refused call created a model');
select results_eq($$select provider, is_active from platform.models where name = 'acme-chat-1'$$,
  $$values ('acme labs'::text, true)$$, 'no refused call changed or deactivated a model');

-- ---------------------------------------------------------------------------
-- The table's constraints are the rules: a value that breaks one is refused
-- with invalid_model, naming the rule.
select tests.authenticate_as(:'adam');
select throws_ok($$select platform.upsert_model('bad-price', 'acme', 1024, -0.01, 0)$$,
  'PT422', 'the model breaks the rule models_input_cost_non_negative', 'a negative input price is refused');
select throws_ok($$select platform.upsert_model('bad-price', 'acme', 1024, 0, -1)$$,
  'PT422', 'the model breaks the rule models_output_cost_non_negative', 'a negative output price is refused');
select throws_ok($$select platform.upsert_model('acme-chat-1', 'acme', 1024, 0, -1)$$,
  'PT422', 'the model breaks the rule models_output_cost_non_negative',
  'a negative price is refused for an existing model too');
select throws_ok($$select platform.upsert_model('bad-size', 'acme', 0, 0, 0)$$,
  'PT422', 'the model breaks the rule models_context_size_positive', 'a context size of 0 is refused');
select throws_ok($$select platform.upsert_model('-bad name', 'acme', 1024, 0, 0)$$,
  'PT422', 'the model breaks the rule models_name_format', 'a malformed name is refused');
select throws_ok($$select platform.upsert_model('bad-provider', '', 1024, 0, 0)$$,
  'PT422', 'the model breaks the rule models_provider_length', 'an empty provider is refused');
select throws_ok($$select platform.upsert_model('bad-url', 'acme', 1024, 0, 0, 'http://example.com')$$,
  'PT422', 'the model breaks the rule models_repo_url_https', 'a repository URL that is not https is refused');
select throws_ok($$select platform.upsert_model('bad-meta', 'acme', 1024, 0, 0, null, '[1]')$$,
  'PT422', 'the model breaks the rule models_metadata_object', 'metadata that is not an object is refused');
select throws_ok($$select platform.upsert_model('bad-null', null, 1024, 0, 0)$$,
  'PT422', 'provider is required', 'a missing provider is refused');
select throws_ok($$select platform.upsert_model('bad-null', 'acme', 1024, 0, 0, null, '{}', null)$$,
  'PT422', 'is_active is required', 'a missing is_active is refused');
select throws_ok($$select platform.upsert_model('bad-huge', 'acme', 1024, 100000000, 0)$$,
  'PT422', 'a price per 1k tokens is at most 99999999.999999', 'a price past numeric(14, 6) is refused');
select is(tests.refusal_code($$select platform.upsert_model('bad-size', 'acme', 0, 0, 0)$$), 'invalid_model',
  'the refusals carry the code invalid_model');
select tests.clear_authentication();
select is((select count(*) from platform.models where name like 'bad-%'), 0::bigint,
  'no refused model was stored');

-- ---------------------------------------------------------------------------
-- Deactivation: the row stays, new usage is refused as for any inactive model.
select tests.authenticate_as(:'alice');
select is((platform.record_token_usage('acme-chat-1', 100, 100, 'before-off') ->> 'cost')::numeric, 0.18,
  'usage is recorded against an active model');
select tests.authenticate_as(:'adam');
select is(platform.deactivate_model('acme-chat-1') ->> 'is_active', 'false',
  'an admin deactivates a model; the answer is the model, inactive');
select is(platform.deactivate_model('acme-chat-1') ->> 'is_active', 'false',
  'deactivating it again changes nothing and succeeds');
select throws_ok($$select platform.deactivate_model('no-such-model')$$,
  'PT404', 'unknown model ''no-such-model''', 'deactivating an unknown model is refused');
select is(tests.refusal_code($$select platform.deactivate_model('no-such-model')$$), 'unknown_model',
  'with the code unknown_model');

select tests.authenticate_as(:'alice');
select throws_ok($$select platform.record_token_usage('acme-chat-1', 1, 1, 'after-off')$$,
  'PT422', 'unknown model ''acme-chat-1''', 'new usage against a deactivated model is refused as unknown_model');
select throws_ok($$select platform.record_token_usage('acme-chat-1', 100, 100, 'before-off')$$,
  'PT422', 'unknown model ''acme-chat-1''',
  'so is a retry of an event recorded before (the model is judged before the replay, as for any inactive model)');
select throws_ok($$select platform.set_default_model('acme-chat-1')$$,
  'PT422', 'unknown model ''acme-chat-1''', 'a deactivated model cannot become a default model');
select ok(not exists (select 1 from jsonb_array_elements(platform.list_models()) m where m ->> 'name' = 'acme-chat-1'),
  'list_models no longer lists it');
select tests.clear_authentication();
select results_eq(
  $$select count(*), sum(u.cost) from platform.token_usage u join platform.models m on m.id = u.model_id
     where m.name = 'acme-chat-1'$$,
  $$values (1::bigint, 0.18::numeric)$$,
  'the model''s row and its ledger row stay, with the cost recorded');

-- Deactivation is undone by describing the model as active again.
select tests.authenticate_as(:'adam');
select is(platform.upsert_model('acme-chat-1', 'acme labs', 65536, 0.3, 1.5) -> 'is_active', 'true'::jsonb,
  'an admin reactivates a model with upsert_model');
select tests.authenticate_as(:'alice');
select is((platform.record_token_usage('acme-chat-1', 100, 100, 'after-on') ->> 'cost')::numeric, 0.18,
  'a reactivated model takes usage again');
select tests.clear_authentication();

select * from finish();
rollback;
