-- mirror_auth_user's p_source: the edge says whether it mirrors from the
-- webhook or just in time, and each such call leaves one telemetry row
-- (`user_mirror_<source>`, the user, whether the row was created), so an
-- operator sees when the webhook is not delivering.
begin;
select plan(7);

insert into auth.users (id, email) values
  ('24200000-0000-4000-8000-000000000001', 'jit@example.test'),
  ('24200000-0000-4000-8000-000000000002', 'hook@example.test');

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
  $$ select function_name, status, details
       from telemetry.execution_metrics
      where details ->> 'user_id' like '24200000-%'
      order by id $$,
  $$ values ('user_mirror_jit'::text, 'ok'::text,
             '{"user_id": "24200000-0000-4000-8000-000000000001", "created": true}'::jsonb),
            ('user_mirror_jit', 'ok', '{"user_id": "24200000-0000-4000-8000-000000000001", "created": false}'),
            ('user_mirror_webhook', 'ok', '{"user_id": "24200000-0000-4000-8000-000000000002", "created": true}') $$,
  'each call naming its source leaves one telemetry row; refused calls and calls without a source none');
select is((select count(*)::int from platform.users where id::text like '24200000-%'), 2,
  'each user is mirrored once');

select * from finish();
rollback;
