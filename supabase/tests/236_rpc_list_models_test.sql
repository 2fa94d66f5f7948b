-- list_models: the active catalogue, for anyone.
begin;
select plan(4);

select tests.clear_authentication();
update platform.models set is_active = false where name = 'mistral-7b-instruct';

select tests.authenticate_as_anon();
select ok(jsonb_array_length(platform.list_models()) >= 4, 'anon lists the catalogue');
select ok(
  not exists (select 1 from jsonb_array_elements(platform.list_models()) m where m ->> 'name' = 'mistral-7b-instruct'),
  'an inactive model is not listed');
select is(
  (select m -> 'context_size' from jsonb_array_elements(platform.list_models()) m where m ->> 'name' = 'bge-small-en-v1.5'),
  '512'::jsonb, 'the guide''s embedding model is listed with its context size');

select tests.clear_authentication();
select tests.authenticate_as(tests.create_user('models@example.com'));
select ok(jsonb_array_length(platform.list_models()) >= 4, 'a signed-in user lists the catalogue');

select * from finish();
rollback;
