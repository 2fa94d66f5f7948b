-- platform.set_default_model: a signed-in user picks their own default model
-- among the active ones.
begin;
select plan(15);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('vera@example.test', 'viewer') as vera \gset
update platform.models set is_active = false where name = 'mistral-7b-instruct';

select tests.authenticate_as(:'alice');
select is(platform.set_default_model('claude-3-5-haiku'),
  jsonb_build_object('user_id', :'alice', 'default_model', 'claude-3-5-haiku'),
  'setting a default model answers the user and the model');
select tests.clear_authentication();
select is((select m.name from platform.users u join platform.models m on m.id = u.default_model_id where u.id = :'alice'),
  'claude-3-5-haiku', 'the user''s default model is stored');
select is((select default_model_id from platform.users where id = :'bob'), null::bigint,
  'other users'' defaults are untouched');

select tests.authenticate_as(:'alice');
select is(platform.set_default_model('gpt-4o-mini') -> 'default_model', '"gpt-4o-mini"'::jsonb,
  'the default can be changed');
select throws_ok($$select platform.set_default_model('no-such-model')$$,
  'PT422', 'unknown model ''no-such-model''', 'an unknown model is refused');
select is(tests.refusal_code($$select platform.set_default_model('no-such-model')$$), 'unknown_model',
  'an unknown model carries the code unknown_model');
select throws_ok($$select platform.set_default_model('mistral-7b-instruct')$$,
  'PT422', 'unknown model ''mistral-7b-instruct''', 'an inactive model is refused like an unknown one');
select throws_ok($$select platform.set_default_model(null)$$,
  'PT422', 'unknown model NULL', 'a missing model is refused');
select tests.clear_authentication();
select is((select m.name from platform.users u join platform.models m on m.id = u.default_model_id where u.id = :'alice'),
  'gpt-4o-mini', 'refused changes leave the default as it was');

select tests.authenticate_as(:'vera');
select is(platform.set_default_model('gpt-4o-mini') -> 'default_model', '"gpt-4o-mini"'::jsonb,
  'a viewer may set their own default model (it spends nothing)');

select tests.authenticate_as_anon();
select throws_ok($$select platform.set_default_model('gpt-4o-mini')$$,
  '42501', 'permission denied for function set_default_model', 'anon may not set a default model');
select tests.authenticate_as_service_role();
select throws_ok($$select platform.set_default_model('gpt-4o-mini')$$,
  '42501', 'permission denied for function set_default_model', 'the service role may not (it acts on the caller''s own account)');
select tests.authenticate_as('40000000-0000-4000-8000-0000000000ee');
select throws_ok($$select platform.set_default_model('gpt-4o-mini')$$,
  'PT404', 'the user is not registered on the platform', 'a signed-in user not on the platform is refused');
select tests.clear_authentication();
select throws_ok($$select platform.set_default_model('gpt-4o-mini')$$,
  'PT401', 'sign in to call this function', 'a call without claims is refused as unauthenticated');
select is(tests.refusal_code($$select platform.set_default_model('gpt-4o-mini')$$), 'not_authenticated',
  'the refusal carries the code not_authenticated');

select * from finish();
rollback;
