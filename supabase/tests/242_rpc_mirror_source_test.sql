-- mirror_auth_user's p_source: the edge says whether it mirrors from the
-- webhook or just in time, and each such call leaves one telemetry.user_mirrors
-- row (the user, the source, whether the row was created) and is counted as a
-- call of `user_mirror_<source>`, so an operator sees when the webhook is not
-- delivering.
begin;
select plan(8);

insert into auth.users (id, email) values
  ('24200000-0000-4000-8000-000000000001', 'jit@example.test'),
  ('24200000-0000-4000-8000-000000000002', 'hook@example.test');

select coalesce(sum(calls) filter (where function_name = 'user_mirror_jit'), 0) as jit_before,
       coalesce(sum(calls) filter (where function_name = 'user_mirror_webhook'), 0) as webhook_before
  from telemetry.execution_totals \gset
select tests.authenticate_as_service_role();
select is(platform.mirror_auth_user('24200000-0000-4000-8000-000000000001', 'jit@example.test',
                                    p_source => 'jit') ->> 'created',
  'true', 'a just-in-time mirror creates the user');
select is(platform.mirror_auth_user('24200000-0000-4000-8000-000000000001', 'jit@example.test',
                                    p_source => 'jit') ->> 'created',
  'false', 'and a second one finds it');
select is(platform.mirror_auth_user('24200000-0000-4000-8000-000000000002', 'hook@example.test',
                                    p_source => 'webhook') ->> 'created',
  'true', 'the webhook mirrors too');
select throws_ok($$ select platform.mirror_auth_user('24200000-0000-4000-8000-000000000002', p_source => 'email') $$,
  'PT422', 'p_source is webhook or jit', 'an unknown source is refused');
select is(tests.refusal_code($$ select platform.mirror_auth_user('24200000-0000-4000-8000-000000000002', p_source => 'x') $$),
  'invalid_source', 'with the code invalid_source');
select platform.mirror_auth_user('24200000-0000-4000-8000-000000000002', 'hook@example.test');
select tests.clear_authentication();

select results_eq(
  $$ select user_id::text, source, created from telemetry.user_mirrors
      where user_id::text like '24200000-%' order by id $$,
  $$ values ('24200000-0000-4000-8000-000000000001'::text, 'jit'::text, true),
            ('24200000-0000-4000-8000-000000000001', 'jit', false),
            ('24200000-0000-4000-8000-000000000002', 'webhook', true) $$,
  'each call naming its source leaves one user_mirrors row; refused calls and calls without a source none');
select results_eq(
  $$ select function_name, calls from telemetry.execution_totals
      where function_name like 'user_mirror_%' order by function_name $$,
  format($$ values ('user_mirror_jit'::text, %s::bigint + 2), ('user_mirror_webhook', %s::bigint + 1) $$,
         :jit_before, :webhook_before),
  'and is counted as a call of user_mirror_<source>');
select is((select count(*)::int from platform.users where id::text like '24200000-%'), 2,
  'each user is mirrored once');

select * from finish();
rollback;
