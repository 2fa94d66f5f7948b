-- record_token_usage_batch and record_queued_usage judge and write their
-- events as one set (platform.record_usage_events); record_token_usage judges
-- one event at a time (platform.usage_event_plan). The two must agree: every
-- event answered and written as if sent on its own, in order. Here the same
-- events go both ways, for users in the same state: a mixed batch naming every
-- case the set works out for itself (new, replayed from the ledger, retried
-- and reused within the batch, invalid, unknown or inactive model, unknown
-- project, ids in a non-canonical form or malformed, holds named twice, past
-- their expiry or unknown, usage past the balance), then 300 random events
-- drawn from a small space so that keys collide, then the queue with two
-- users' events interleaved.
begin;
select plan(14);

-- A model the random events may name after it is deactivated.
insert into platform.models (name, provider, context_size, input_cost_per_1k_tokens, output_cost_per_1k_tokens)
values ('retired-model', 'test', 1000, 1, 2);
update platform.models set is_active = false where name = 'retired-model';

-- A user with 500 tokens, a project, a session in it, and two holds: h1
-- active, h2 past its expiry (not yet swept). Security definer: moving a
-- hold's expiry is a superuser's edit, not an RPC.
create function pg_temp.fixture(p_email text) returns jsonb language plpgsql security definer as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_project uuid := gen_random_uuid();
  v_session uuid := gen_random_uuid();
  v_h1 uuid;
  v_h2 uuid;
begin
  perform tests.grant_tokens(v_user, 500);
  insert into platform.projects (id, owner_id, name) values (v_project, v_user, 'p');
  insert into platform.sessions (id, project_id, user_id) values (v_session, v_project, v_user);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  v_h1 := (platform.reserve_tokens(40, 600, v_user) ->> 'reservation_id')::uuid;
  v_h2 := (platform.reserve_tokens(30, 600, v_user) ->> 'reservation_id')::uuid;
  update platform.token_reservations
     set created_at = now() - interval '1 hour', expires_at = now() - interval '1 second'
   where id = v_h2;
  -- Keys already in the ledger before the batch: r1 as the events ask it
  -- again, r2 as they ask it differently.
  perform platform.record_token_usage('gpt-4o-mini', 7, 1, 'r1', p_user_id => v_user);
  perform platform.record_token_usage('gpt-4o-mini', 7, 1, 'r2', p_user_id => v_user);
  perform set_config('request.jwt.claims', '', true);
  return jsonb_build_object('user', v_user, 'P', v_project, 'S', v_session, 'H1', v_h1, 'H2', v_h2,
                            'H1x', replace(v_h1::text, '-', ''), 'H1U', upper(v_h1::text));
end
$$;

-- An event for a user: symbolic ids (P, S, H1, H2, H1x: H1 without hyphens,
-- H1U: H1 in upper case) replaced by that user's.
create function pg_temp.resolve(p_spec jsonb, p_fixture jsonb) returns jsonb language sql as $$
  select coalesce(jsonb_object_agg(k,
           case when k in ('project_id', 'session_id', 'reservation_id') and p_fixture ? (v #>> '{}')
                then p_fixture -> (v #>> '{}') else v end), '{}')
    from jsonb_each(p_spec) e(k, v)
$$;

-- The same events one by one through record_token_usage, each answered as the
-- batch answers it (a malformed id, which the single path receives as a
-- failed cast, as the batch words it).
create function pg_temp.one_by_one(p_user uuid, p_events jsonb) returns jsonb[] language plpgsql as $$
declare
  v_event jsonb;
  v_answer jsonb;
  v_answers jsonb[] := '{}';
  v_state text;
  v_message text;
  v_hint text;
begin
  for v_event in select e from jsonb_array_elements(p_events) with ordinality t(e, i) order by i loop
    begin
      v_answer := platform.record_token_usage(v_event ->> 'model', (v_event ->> 'prompt_tokens')::bigint,
        (v_event ->> 'completion_tokens')::bigint, v_event ->> 'idempotency_key',
        p_project_id => (v_event ->> 'project_id')::uuid, p_session_id => (v_event ->> 'session_id')::uuid,
        p_metadata => v_event -> 'metadata', p_reservation_id => (v_event ->> 'reservation_id')::uuid,
        p_user_id => p_user);
      v_answer := jsonb_build_object('status',
        case when (v_answer ->> 'replayed')::boolean then 'replayed' else 'recorded' end) || v_answer;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
      v_answer := jsonb_build_object('status', 'rejected', 'error',
        case when v_state = '22P02' then '{"code": "invalid_event", "message": "an id in this event is not a valid UUID"}'
             else jsonb_build_object('code', v_hint, 'message', v_message) end);
    end;
    v_answers := v_answers || v_answer;
  end loop;
  return v_answers;
end
$$;

-- An answer without what differs between two users by construction: the
-- index (absent from the queue's answers), the ledger id, the time, and the
-- hold's id (named h1, h2 or other).
create function pg_temp.comparable(p_answer jsonb, p_fixture jsonb) returns jsonb language sql as $$
  select (p_answer - 'index' - 'usage_id' - 'created_at')
    || case when jsonb_typeof(p_answer -> 'reservation') = 'object' then
         jsonb_build_object('reservation', (p_answer -> 'reservation')
           || jsonb_build_object('id', case p_answer -> 'reservation' ->> 'id'
                                         when p_fixture ->> 'H1' then 'h1' when p_fixture ->> 'H2' then 'h2'
                                         else 'other' end))
       else '{}'::jsonb end
$$;

create function pg_temp.answers(p_answers jsonb, p_fixture jsonb) returns jsonb[] language sql as $$
  select array_agg(pg_temp.comparable(r, p_fixture) order by i)
    from jsonb_array_elements(p_answers) with ordinality t(r, i)
$$;

-- What a user's ledger, holds and balance came to, comparable across users.
create function pg_temp.outcome(p_fixture jsonb) returns text language sql as $$
  select concat_ws(' | ',
    (select string_agg(format('%s %s+%s=%s %s %s %s %s %s', m.name, u.prompt_tokens, u.completion_tokens,
                              u.total_tokens, u.cost, u.idempotency_key, u.balance_after,
                              coalesce(u.reservation_outcome, '-'), u.metadata), ', ' order by u.id)
       from platform.token_usage u join platform.models m on m.id = u.model_id
      where u.user_id = (p_fixture ->> 'user')::uuid),
    (select string_agg(format('%s %s', r.tokens, r.status), ', ' order by r.tokens)
       from platform.token_reservations r where r.user_id = (p_fixture ->> 'user')::uuid),
    (select format('granted %s used %s reserved %s', b.granted, b.used, b.reserved)
       from platform.token_balances b where b.user_id = (p_fixture ->> 'user')::uuid))
$$;

-- The helpers above are called under the API roles below; functions are not
-- executable by PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

-- ---------------------------------------------------------------------------
-- Every case in one batch.
select '[
  {"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 50, "idempotency_key": "m1", "reservation_id": "H1"},
  {"model": "gpt-4o-mini", "prompt_tokens": 7, "completion_tokens": 1, "idempotency_key": "r1"},
  {"model": "gpt-4o-mini", "prompt_tokens": 8, "completion_tokens": 1, "idempotency_key": "r2"},
  {"model": "no-such-model", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "m2"},
  {"model": "retired-model", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "m2"},
  {"model": "gpt-4o-mini", "prompt_tokens": -1, "completion_tokens": 1, "idempotency_key": "m2"},
  {"model": "gpt-4o-mini", "prompt_tokens": 0, "completion_tokens": 0, "idempotency_key": "m2"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "m2", "project_id": "00000000-0000-4000-8000-0000000000aa"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "m2", "project_id": "P", "session_id": "S"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "m2", "project_id": "P", "session_id": "S"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "m2", "project_id": "P"},
  {"model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 0, "idempotency_key": "m2", "project_id": "not-a-uuid"},
  {"model": "gpt-4o-mini", "prompt_tokens": 20, "completion_tokens": 0, "idempotency_key": "m3", "reservation_id": "H1x"},
  {"model": "gpt-4o-mini", "prompt_tokens": 20, "completion_tokens": 0, "idempotency_key": "m4", "reservation_id": "H1U"},
  {"model": "claude-3-5-haiku", "prompt_tokens": 5, "completion_tokens": 5, "idempotency_key": "m5", "reservation_id": "H2"},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "m6", "reservation_id": "00000000-0000-4000-8000-000000000000"},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "m7", "metadata": {"n": 1}},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "m7", "metadata": {"n": 2}},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1, "idempotency_key": "m7", "metadata": {"n": 1}},
  {"model": "gpt-4o-mini", "prompt_tokens": 900, "completion_tokens": 0, "idempotency_key": "m8"},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "m9"},
  {"model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": ""},
  {"model": "gpt-4o-mini", "prompt_tokens": 1000000000001, "completion_tokens": 0, "idempotency_key": "m10"},
  {"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 50, "idempotency_key": "m1", "reservation_id": "H1"}
]' as mixed \gset

select pg_temp.fixture('set-batch@example.test') as batch_user \gset
select pg_temp.fixture('set-single@example.test') as single_user \gset
select tests.authenticate_as_service_role();
select platform.record_token_usage_batch(
  (select jsonb_agg(pg_temp.resolve(e, :'batch_user') order by i)
     from jsonb_array_elements(:'mixed') with ordinality t(e, i)),
  (:'batch_user'::jsonb ->> 'user')::uuid) as batch_answer \gset
select pg_temp.one_by_one((:'single_user'::jsonb ->> 'user')::uuid,
  (select jsonb_agg(pg_temp.resolve(e, :'single_user') order by i)
     from jsonb_array_elements(:'mixed') with ordinality t(e, i))) as single_answers \gset
select tests.clear_authentication();

select is(pg_temp.answers(:'batch_answer'::jsonb -> 'results', :'batch_user'),
  (select array_agg(pg_temp.comparable(r, :'single_user') order by i)
     from unnest(:'single_answers'::jsonb[]) with ordinality t(r, i)),
  'a mixed batch: every event is answered as when sent on its own');
select is(
  (select array_agg(r ->> 'status' order by i) from jsonb_array_elements(:'batch_answer'::jsonb -> 'results') with ordinality t(r, i)),
  array['recorded', 'replayed', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'recorded',
        'replayed', 'rejected', 'rejected', 'recorded', 'recorded', 'recorded', 'recorded', 'recorded', 'rejected',
        'replayed', 'recorded', 'recorded', 'rejected', 'rejected', 'replayed'],
  'the mixed batch holds the cases meant: new, replays, reuses, refusals');
select is(
  (select array_agg(r -> 'error' ->> 'code' order by i) filter (where r ->> 'status' = 'rejected')
     from jsonb_array_elements(:'batch_answer'::jsonb -> 'results') with ordinality t(r, i)),
  array['idempotency_key_reused', 'unknown_model', 'unknown_model', 'invalid_token_count', 'invalid_token_count',
        'unknown_project', 'idempotency_key_reused', 'invalid_event', 'idempotency_key_reused',
        'invalid_idempotency_key', 'invalid_token_count'],
  'each refusal of the mixed batch carries its code');
select is(:'batch_answer'::jsonb -> 'results' -> 13 -> 'reservation' ->> 'outcome', 'not_active',
  'a hold named again in another form of its id is the same hold, already settled');
select ok((:'batch_answer'::jsonb -> 'results' -> 19 ->> 'exhausted')::boolean,
  'usage past the balance is recorded and says so');
select is(pg_temp.outcome(:'batch_user'), pg_temp.outcome(:'single_user'),
  'the ledger rows (in order, with balances, costs and hold outcomes), holds and balances are the same');
select is(:'batch_answer'::jsonb - 'results', '{"recorded": 9, "replayed": 4, "rejected": 11}'::jsonb,
  'the counts match the results');

-- ---------------------------------------------------------------------------
-- 300 random events over 25 keys: most ask what their key's first event
-- asks (a retry), some something else (a reuse, or a refusal).
select setseed(0.207);
select jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
         'idempotency_key', 'x' || k,
         'model', (array['gpt-4o-mini', 'gpt-4o-mini', 'claude-3-5-haiku', 'no-such-model', 'retired-model'])[1 + (c[1] * 4)::int],
         'prompt_tokens', (array[5, 5, 9, 0, -1])[1 + (c[2] * 4)::int],
         'completion_tokens', (array[0, 2])[1 + (c[3] * 1)::int],
         'project_id', (array[null, null, null, 'P', '00000000-0000-4000-8000-0000000000aa'])[1 + (c[4] * 4)::int],
         'session_id', (array[null, null, null, null, 'S'])[1 + (c[5] * 4)::int],
         'reservation_id', (array[null, null, null, 'H1', 'H2', 'H1x', '00000000-0000-4000-8000-000000000000'])[1 + (c[6] * 6)::int],
         'metadata', (array['{}', '{"a": 1}', null])[1 + (c[7] * 2)::int]::jsonb)) order by n)
  as random_events
  from (select n, k,
               -- The key's own choices (the same for every event of the key),
               -- or, one time in four, fresh ones.
               case when random() < 0.75 then array(select ((k * 7919 + j * 104729) % 1000) / 1000.0 from generate_series(1, 7) j)
                    else array(select random() from generate_series(1, 7)) end as c
          from (select n, (random() * 24)::int as k from generate_series(1, 300) n) x) y \gset

select pg_temp.fixture('rand-batch@example.test') as rand_batch \gset
select pg_temp.fixture('rand-single@example.test') as rand_single \gset
select tests.authenticate_as_service_role();
select platform.record_token_usage_batch(
  (select jsonb_agg(pg_temp.resolve(e, :'rand_batch') order by i)
     from jsonb_array_elements(:'random_events') with ordinality t(e, i)),
  (:'rand_batch'::jsonb ->> 'user')::uuid) as rand_answer \gset
select pg_temp.one_by_one((:'rand_single'::jsonb ->> 'user')::uuid,
  (select jsonb_agg(pg_temp.resolve(e, :'rand_single') order by i)
     from jsonb_array_elements(:'random_events') with ordinality t(e, i))) as rand_single_answers \gset
select tests.clear_authentication();

select is(pg_temp.answers(:'rand_answer'::jsonb -> 'results', :'rand_batch'),
  (select array_agg(pg_temp.comparable(r, :'rand_single') order by i)
     from unnest(:'rand_single_answers'::jsonb[]) with ordinality t(r, i)),
  '300 random events: every one answered as when sent on its own');
select is(pg_temp.outcome(:'rand_batch'), pg_temp.outcome(:'rand_single'),
  '300 random events: the same ledger, holds and balance');
select ok((select count(distinct r ->> 'status') = 3 and count(*) filter (where r -> 'error' ->> 'code' = 'idempotency_key_reused') > 0
             from jsonb_array_elements(:'rand_answer'::jsonb -> 'results') r),
  'the random events hold recorded, replayed and rejected events, key reuses among them');

-- ---------------------------------------------------------------------------
-- The queue: two users' events interleaved in one delivery are judged per
-- user as the batch judges them, in message order. Its answer is compact
-- (counts, and only the rejected events): compared on those, and on the ledgers.
select pg_temp.fixture('q-one@example.test') as q_one \gset
select pg_temp.fixture('q-two@example.test') as q_two \gset
select pg_temp.fixture('b-one@example.test') as b_one \gset
select pg_temp.fixture('b-two@example.test') as b_two \gset
select tests.authenticate_as_service_role();
select platform.record_queued_usage(
  (select jsonb_agg(jsonb_build_object('user_id', f ->> 'user',
                                       'event', pg_temp.resolve(e, f)) order by i)
     from jsonb_array_elements(:'mixed') with ordinality t(e, i)
    cross join lateral (select case when i % 3 = 0 then :'q_two'::jsonb else :'q_one'::jsonb end as f) x))
  as queue_answer \gset
select platform.record_token_usage_batch(
  (select jsonb_agg(pg_temp.resolve(e, :'b_one') order by i)
     from jsonb_array_elements(:'mixed') with ordinality t(e, i) where i % 3 <> 0),
  (:'b_one'::jsonb ->> 'user')::uuid) as b_one_answer \gset
select platform.record_token_usage_batch(
  (select jsonb_agg(pg_temp.resolve(e, :'b_two') order by i)
     from jsonb_array_elements(:'mixed') with ordinality t(e, i) where i % 3 = 0),
  (:'b_two'::jsonb ->> 'user')::uuid) as b_two_answer \gset
select tests.clear_authentication();

select is(
  (select array_agg(r -> 'error' order by i)
     from jsonb_array_elements(:'queue_answer'::jsonb -> 'rejections') with ordinality t(r, i)
    where ((r ->> 'index')::int + 1) % 3 <> 0),
  (select array_agg(r -> 'error' order by i)
     from jsonb_array_elements(:'b_one_answer'::jsonb -> 'results') with ordinality t(r, i)
    where r ->> 'status' = 'rejected'),
  'the queue rejects the first user''s events as a batch of them does');
select is(
  (select array_agg(r -> 'error' order by i)
     from jsonb_array_elements(:'queue_answer'::jsonb -> 'rejections') with ordinality t(r, i)
    where ((r ->> 'index')::int + 1) % 3 = 0),
  (select array_agg(r -> 'error' order by i)
     from jsonb_array_elements(:'b_two_answer'::jsonb -> 'results') with ordinality t(r, i)
    where r ->> 'status' = 'rejected'),
  'and the second user''s as a batch of theirs does');
select is(
  (select jsonb_build_object('recorded', (:'queue_answer'::jsonb -> 'recorded')::int,
                             'replayed', (:'queue_answer'::jsonb -> 'replayed')::int,
                             'rejected', (:'queue_answer'::jsonb -> 'rejected')::int)),
  (select jsonb_build_object(
     'recorded', (:'b_one_answer'::jsonb -> 'recorded')::int + (:'b_two_answer'::jsonb -> 'recorded')::int,
     'replayed', (:'b_one_answer'::jsonb -> 'replayed')::int + (:'b_two_answer'::jsonb -> 'replayed')::int,
     'rejected', (:'b_one_answer'::jsonb -> 'rejected')::int + (:'b_two_answer'::jsonb -> 'rejected')::int)),
  'it counts as many recorded, replayed and rejected events as the two batches');
select is(pg_temp.outcome(:'q_one') || ' || ' || pg_temp.outcome(:'q_two'),
  pg_temp.outcome(:'b_one') || ' || ' || pg_temp.outcome(:'b_two'),
  'the queue leaves the same ledgers, holds and balances');

select * from finish();
rollback;
