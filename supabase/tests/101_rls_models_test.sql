-- platform.models: the catalogue. Anyone (anon included) reads the active
-- models, admins also the inactive ones; only the service role writes.
-- Owner and stranger are the same here: a model belongs to nobody, so one
-- developer stands for every signed-in non-admin.
begin;
select plan(22);

-- Fixtures, as the superuser: an inactive model beside the catalogue's.
select tests.create_user('dev@example.com') as developer \gset
select tests.create_user('admin@example.com', 'admin') as admin \gset
insert into platform.models (name, provider, context_size, is_active)
values ('retired-model', 'acme', 4096, false);
select count(*) filter (where is_active) as active_models, count(*) as all_models
  from platform.models \gset

-- anon -----------------------------------------------------------------------
select tests.authenticate_as_anon();

select is((select count(*) from platform.models), :active_models::bigint,
  'anon reads every active model');
select is((select count(*) from platform.models where name = 'retired-model'), 0::bigint,
  'anon does not see inactive models');
select throws_ok(
  $$ insert into platform.models (name, provider, context_size) values ('anon-model', 'acme', 1) $$,
  '42501', 'permission denied for table models', 'anon cannot insert models');
select throws_ok(
  $$ update platform.models set input_cost_per_1k_tokens = 0 $$,
  '42501', 'permission denied for table models', 'anon cannot update models');
select throws_ok(
  $$ delete from platform.models $$,
  '42501', 'permission denied for table models', 'anon cannot delete models');

-- a signed-in developer --------------------------------------------------------
select tests.authenticate_as(:'developer');

select is((select count(*) from platform.models), :active_models::bigint,
  'a developer reads every active model');
select is((select count(*) from platform.models where name = 'retired-model'), 0::bigint,
  'a developer does not see inactive models');
select throws_ok(
  $$ insert into platform.models (name, provider, context_size) values ('dev-model', 'acme', 1) $$,
  '42501', 'permission denied for table models', 'a developer cannot insert models');
select throws_ok(
  $$ update platform.models set input_cost_per_1k_tokens = 0 $$,
  '42501', 'permission denied for table models', 'a developer cannot change prices');
select throws_ok(
  $$ delete from platform.models $$,
  '42501', 'permission denied for table models', 'a developer cannot delete models');

-- admin ----------------------------------------------------------------------
select tests.authenticate_as(:'admin');

select is((select count(*) from platform.models), :all_models::bigint,
  'an admin reads every model, active or not');
select is((select count(*) from platform.models where name = 'retired-model'), 1::bigint,
  'an admin sees inactive models');
select throws_ok(
  $$ insert into platform.models (name, provider, context_size) values ('admin-model', 'acme', 1) $$,
  '42501', 'permission denied for table models', 'an admin cannot insert models directly');
select throws_ok(
  $$ update platform.models set is_active = true where name = 'retired-model' $$,
  '42501', 'permission denied for table models', 'an admin cannot update models directly');
select throws_ok(
  $$ delete from platform.models where name = 'retired-model' $$,
  '42501', 'permission denied for table models', 'an admin cannot delete models directly');

-- service_role -----------------------------------------------------------------
select tests.authenticate_as_service_role();

select is((select count(*) from platform.models), :all_models::bigint,
  'the service role reads every model');
select lives_ok(
  $$ insert into platform.models (name, provider, context_size) values ('new-model', 'acme', 8192) $$,
  'the service role inserts models');
select lives_ok(
  $$ update platform.models set is_active = true, output_cost_per_1k_tokens = 0.5 where name = 'retired-model' $$,
  'the service role updates models');
select lives_ok(
  $$ delete from platform.models where name = 'new-model' $$,
  'the service role deletes models');

-- What the service role's writes did, and that nobody else's did anything.
select tests.clear_authentication();
select is((select count(*) from platform.models where name in ('anon-model', 'dev-model', 'admin-model', 'new-model')),
  0::bigint, 'only the service role''s model was ever created, and it is gone again');
select ok((select is_active and output_cost_per_1k_tokens = 0.5 from platform.models where name = 'retired-model'),
  'the service role''s update took effect');
select is((select count(*) from platform.models where input_cost_per_1k_tokens = 0 and name <> 'retired-model'),
  0::bigint, 'no refused price change reached a model');

select * from finish();
rollback;
