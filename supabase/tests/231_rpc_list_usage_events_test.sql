-- platform.list_usage_events: a user's own ledger rows, newest first
-- (created_at, then id, descending), a page at a time below a keyset
-- position, never another user's, with its bounds and refusals.
begin;
select plan(22);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset

-- Alice's rows over three instants, three of them sharing one (as a batch's
-- rows share their transaction's timestamp), inserted out of order; Bob's
-- rows interleave with hers in time. Written as the table's owner: the RPCs
-- stamp rows with now().
insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens, cost,
                                  idempotency_key, balance_after, created_at)
select v.who::uuid, (select id from platform.models where name = 'gpt-4o-mini'), v.p, 5, v.p + 5, 0.00015, v.k, 0,
       timestamptz '2026-11-30 10:00:00.123456+00' + v.minutes * interval '1 minute'
  from (values (:'alice', 10, 'a-mid-1', 5), (:'alice', 11, 'a-old', 0), (:'alice', 12, 'a-mid-2', 5),
               (:'bob', 13, 'b-1', 5), (:'alice', 14, 'a-new', 9), (:'alice', 15, 'a-mid-3', 5),
               (:'alice', 16, 'a-older', -3), (:'bob', 17, 'b-2', 20), (:'alice', 18, 'a-newest', 10))
       v(who, p, k, minutes);

-- Alice's keys as they must come: created_at descending, then id descending.
create function pg_temp.expected(p_user uuid) returns text[]
language sql as $$
  select array_agg(u.idempotency_key order by u.created_at desc, u.id desc)
    from platform.token_usage u where u.user_id = p_user
$$;

-- Every page at p_limit, following next, as the calling role: the keys in
-- the order read, and how many pages it took.
create function pg_temp.walk(p_limit int, out keys text[], out pages int) returns record
language plpgsql as $$
declare
  v_page jsonb;
  v_us bigint;
  v_id bigint;
begin
  keys := '{}';
  pages := 0;
  loop
    v_page := platform.list_usage_events(p_limit, v_us, v_id);
    pages := pages + 1;
    keys := keys || array(select e ->> 'idempotency_key' from jsonb_array_elements(v_page -> 'events') e);
    exit when v_page -> 'next' = 'null'::jsonb or pages > 100;
    v_us := (v_page -> 'next' ->> 'created_at_us')::bigint;
    v_id := (v_page -> 'next' ->> 'id')::bigint;
  end loop;
end
$$;
grant execute on all functions in schema pg_temp to public;

select tests.authenticate_as(:'alice');

select is((select keys from pg_temp.walk(50)), pg_temp.expected(:'alice'),
  'one page holds all seven rows, newest first, the three of one instant by id descending');
select is((select array_length(keys, 1) from pg_temp.walk(50)), 7, 'and only the caller''s rows');
select is((select pages from pg_temp.walk(50)), 1, 'with no next page');

select is((select keys from pg_temp.walk(3)), pg_temp.expected(:'alice'),
  'pages of three, followed to the end, read every row once in order: no gap, no duplicate');
select is((select pages from pg_temp.walk(3)), 3, 'in three pages');
select is((select keys from pg_temp.walk(1)), pg_temp.expected(:'alice'),
  'pages of one cut between the rows of one instant without losing any');
select is((select keys from pg_temp.walk(7)), pg_temp.expected(:'alice'), 'a page of exactly what is left');
select is((select pages from pg_temp.walk(7)), 1, 'says no more follow');
select is((select pages from pg_temp.walk(6)), 2, 'and one row short of it, one more page follows');

select is((select keys from pg_temp.walk(2)) && array['b-1', 'b-2'], false,
  'none of another user''s rows ever shows');

-- One row as the page shows it.
select is(
  platform.list_usage_events(1) -> 'events' -> 0,
  jsonb_build_object(
    'id', (select id::text from platform.token_usage where idempotency_key = 'a-newest'),
    'created_at', '2026-11-30T10:10:00.123456+00:00',
    'model', 'gpt-4o-mini', 'prompt_tokens', 18, 'completion_tokens', 5, 'total_tokens', 23,
    'cost', '0.000150', 'idempotency_key', 'a-newest',
    'api_key_id', null, 'project_id', null, 'session_id', null),
  'a row: its id and cost as exact strings, created_at in RFC 3339 with its offset');
select is(
  platform.list_usage_events(1) -> 'next',
  jsonb_build_object('created_at_us', (select (extract(epoch from created_at) * 1000000)::bigint
                                         from platform.token_usage where idempotency_key = 'a-newest'),
                     'id', (select id from platform.token_usage where idempotency_key = 'a-newest')),
  'next is the last row''s instant in microseconds and its id');

-- A row recorded while Alice pages: newer than her cursor, it does not shift
-- the pages still to come.
select platform.list_usage_events(2) -> 'next' as cursor \gset
select tests.clear_authentication();
insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens, cost,
                                  idempotency_key, balance_after, created_at)
values (:'alice', (select id from platform.models where name = 'gpt-4o-mini'), 1, 1, 2, 0, 'a-during', 0,
        timestamptz '2026-11-30 10:30:00+00');
select tests.authenticate_as(:'alice');
select is(
  array(select e ->> 'idempotency_key' from jsonb_array_elements(
    platform.list_usage_events(2, (:'cursor'::jsonb ->> 'created_at_us')::bigint, (:'cursor'::jsonb ->> 'id')::bigint)
      -> 'events') e),
  (pg_temp.expected(:'alice'))[4:5],
  'a row recorded meanwhile does not move the next page (a keyset, not an offset)');

-- Bounds and refusals.
select is(jsonb_array_length(platform.list_usage_events(100) -> 'events'), 8, 'a limit of 100 is taken');
select is(tests.refusal_code($$ select platform.list_usage_events(0) $$), 'invalid_limit', 'a limit of 0 is refused');
select is(tests.refusal_code($$ select platform.list_usage_events(101) $$), 'invalid_limit', 'so is 101');
select throws_ok($$ select platform.list_usage_events(null) $$, 'PT400',
  'limit must be a whole number from 1 to 100', 'and none, with 400');
select throws_ok($$ select platform.list_usage_events(10, 1, null) $$, 'PT400',
  'before is not a cursor this API gave', 'half a cursor is refused with 400 invalid_cursor');
select is(
  array[tests.refusal_code($$ select platform.list_usage_events(10, null, 1) $$),
        tests.refusal_code($$ select platform.list_usage_events(10, -1, 1) $$),
        tests.refusal_code($$ select platform.list_usage_events(10, 1, 0) $$)],
  array['invalid_cursor', 'invalid_cursor', 'invalid_cursor'],
  'as are the other half, a negative instant and an id below 1');

-- Whose rows: never another user's, for an admin neither; the service role
-- names the user (the edge, for an API key's owner).
select tests.authenticate_as(:'adam');
select is(tests.refusal_code(format($$ select platform.list_usage_events(10, null, null, %L) $$, :'alice')),
  'forbidden', 'an admin may not read another user''s events here');
select tests.authenticate_as_service_role();
select is(
  array(select e ->> 'idempotency_key' from jsonb_array_elements(
    platform.list_usage_events(10, null, null, :'bob') -> 'events') e),
  array['b-2', 'b-1'], 'the service role reads the user it names');
select is(tests.refusal_code($$ select platform.list_usage_events(10) $$), 'user_id_required',
  'and must name one');

select * from finish();
rollback;
