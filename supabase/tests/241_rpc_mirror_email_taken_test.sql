-- mirror_auth_user: an email another platform user already has is a coded
-- refusal, and nothing is written.
begin;
select plan(3);

select tests.create_user('taken@example.com') as first \gset
select gen_random_uuid() as second \gset
insert into auth.users (id, email) values (:'second', 'other@example.com');

select tests.authenticate_as_service_role();
select throws_ok(
  format($$ select platform.mirror_auth_user(%L, 'Taken@Example.com') $$, :'second'),
  'PT409', 'another platform user already has this email address',
  'an email already used by another platform user (any case) is refused with PT409');
select is(
  (select (platform.mirror_auth_user(:'second', 'fresh@example.com')) ->> 'created')::boolean,
  true, 'the same user mirrors fine with an email of their own');
select tests.clear_authentication();
select is((select count(*) from platform.users where email = 'taken@example.com'), 1::bigint,
  'the first user keeps the email alone');

select * from finish();
rollback;
