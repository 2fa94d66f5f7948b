-- pgbench script for `cargo xtask bench`: one record_token_usage call as the
-- service role on behalf of user :u of the bench users (1..:users), in its
-- own transaction, as PostgREST runs an RPC. -D users=N sets the spread:
-- many users, or 1 for the hot-row case (every call locks one balance row).
\set u random(1, :users)
begin;
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select platform.record_token_usage('gpt-4o-mini', 12, 3, gen_random_uuid()::text,
  p_user_id => (select id from bench.users where n = :u));
commit;
