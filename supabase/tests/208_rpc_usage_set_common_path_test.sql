-- record_usage_events tries the common case first (every event new to the
-- ledger and to the batch, none naming a hold, none refused for its project
-- or session): one INSERT whose unique key judges retries, answers built
-- from what it writes. Any other batch is undone and judged by the general
-- statement. Both must answer and write what the events sent one by one
-- would: here batches that take the common path, and batches that start on
-- it and must leave it (a retry after new events, a key repeated in the
-- batch, a retry naming a project deleted since, a hold), with nothing of the
-- abandoned attempt left in the ledger, the balance or the daily summary.
begin;
select plan(15);

-- A user with 1000 tokens and a project.
create function pg_temp.fixture(p_email text) returns jsonb language plpgsql as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_project uuid := gen_random_uuid();
begin
  perform tests.grant_tokens(v_user, 1000);
  insert into platform.projects (id, owner_id, name) values (v_project, v_user, 'p');
  return jsonb_build_object('user', v_user, 'P', v_project);
end
$$;

-- Events with "P" as project_id naming the user's project.
create function pg_temp.resolve(p_events jsonb, p_fixture jsonb) returns jsonb language sql as $$
  select jsonb_agg(case when e ->> 'project_id' = 'P' then e || jsonb_build_object('project_id', p_fixture -> 'P')
                   else e end order by i)
    from jsonb_array_elements(p_events) with ordinality t(e, i)
$$;

create function pg_temp.batch(p_fixture jsonb, p_events jsonb) returns jsonb language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  return platform.record_token_usage_batch(pg_temp.resolve(p_events, p_fixture), (p_fixture ->> 'user')::uuid)::jsonb;
end
$$;

-- The same events one by one through record_token_usage, each answered as the
-- batch answers it.
create function pg_temp.one_by_one(p_fixture jsonb, p_events jsonb) returns jsonb language plpgsql as $$
declare
  v_event jsonb;
  v_index bigint;
  v_answer jsonb;
  v_answers jsonb := '[]';
  v_message text;
  v_hint text;
begin
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  for v_event, v_index in
    select e, i from jsonb_array_elements(pg_temp.resolve(p_events, p_fixture)) with ordinality t(e, i) order by i
  loop
    begin
      v_answer := platform.record_token_usage(v_event ->> 'model', (v_event ->> 'prompt_tokens')::bigint,
        (v_event ->> 'completion_tokens')::bigint, v_event ->> 'idempotency_key',
        p_project_id => (v_event ->> 'project_id')::uuid, p_metadata => coalesce(v_event -> 'metadata', '{}'),
        p_reservation_id => (v_event ->> 'reservation_id')::uuid, p_user_id => (p_fixture ->> 'user')::uuid);
      v_answer := jsonb_build_object('index', v_index - 1, 'status',
        case when (v_answer ->> 'replayed')::boolean then 'replayed' else 'recorded' end) || v_answer;
    exception when others then
      get stacked diagnostics v_message = message_text, v_hint = pg_exception_hint;
      v_answer := jsonb_build_object('index', v_index - 1, 'status', 'rejected',
        'error', jsonb_build_object('code', v_hint, 'message', v_message));
    end;
    v_answers := v_answers || jsonb_build_array(v_answer);
  end loop;
  return jsonb_build_object('results', v_answers);
end
$$;

-- Answers without what differs between two users by construction.
create function pg_temp.comparable(p_answer jsonb) returns jsonb[] language sql as $$
  select array_agg(r - 'usage_id' - 'created_at'
                     || case when r -> 'reservation' ? 'id'
                          then jsonb_build_object('reservation', (r -> 'reservation') - 'id') else '{}'::jsonb end
                   order by i)
    from jsonb_array_elements(p_answer -> 'results') with ordinality t(r, i)
$$;

-- What a user's ledger and balance came to, comparable across users.
create function pg_temp.outcome(p_fixture jsonb) returns text language sql as $$
  select concat_ws(' | ',
    (select string_agg(format('%s %s+%s=%s %s %s %s %s %s', u.model_id, u.prompt_tokens, u.completion_tokens,
                              u.total_tokens, u.cost, u.idempotency_key, u.balance_after,
                              coalesce(u.reservation_outcome, '-'), u.metadata), ', ' order by u.id)
       from platform.token_usage u where u.user_id = (p_fixture ->> 'user')::uuid),
    (select format('used %s reserved %s', b.used, b.reserved)
       from platform.token_balances b where b.user_id = (p_fixture ->> 'user')::uuid))
$$;

-- The answered ledger ids (recorded and replayed events, in order) and the
-- ledger rows they should name, with their time.
create function pg_temp.answered_rows(p_answer jsonb) returns text[] language sql as $$
  select array_agg(format('%s %s', r ->> 'usage_id', (r ->> 'created_at')::timestamptz) order by i)
    from jsonb_array_elements(p_answer -> 'results') with ordinality t(r, i) where r ->> 'status' <> 'rejected'
$$;
create function pg_temp.ledger_rows(p_fixture jsonb, p_keys text[]) returns text[] language sql as $$
  select array_agg(format('%s %s', u.id, u.created_at) order by k.i)
    from unnest(p_keys) with ordinality k(key, i)
    join platform.token_usage u on u.user_id = (p_fixture ->> 'user')::uuid and u.idempotency_key = k.key
$$;

grant execute on all functions in schema pg_temp to public;

select pg_temp.fixture('common-batch@example.test') as batch \gset
select pg_temp.fixture('common-single@example.test') as single \gset

-- ---------------------------------------------------------------------------
-- New events only, one of them refused: the common path.
select '[
  {"idempotency_key": "n1", "model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 20},
  {"idempotency_key": "n2", "model": "claude-3-5-haiku", "prompt_tokens": 300, "completion_tokens": 400,
   "project_id": "P", "metadata": {"trace": "t"}},
  {"idempotency_key": "n3", "model": "no-such-model", "prompt_tokens": 1, "completion_tokens": 1},
  {"idempotency_key": "n4", "model": "gpt-4o-mini", "prompt_tokens": 150, "completion_tokens": 150}
]' as new_events \gset

set local role service_role;
select pg_temp.batch(:'batch', :'new_events') as new_answer \gset
select pg_temp.one_by_one(:'single', :'new_events') as new_single \gset
reset role;

select is(pg_temp.comparable(:'new_answer'), pg_temp.comparable(:'new_single'),
  'a batch of new events answers as the events sent one by one');
select is(pg_temp.outcome(:'batch'), pg_temp.outcome(:'single'),
  'and writes the same ledger rows and balance');
select is(pg_temp.answered_rows(:'new_answer'), pg_temp.ledger_rows(:'batch', array['n1', 'n2', 'n4']),
  'each answer names its ledger row and its time');
select is(
  (select array_agg(u.idempotency_key order by u.id) from platform.token_usage u
    where u.user_id = (:'batch'::jsonb ->> 'user')::uuid),
  array['n1', 'n2', 'n4'],
  'the ledger numbers the rows in the order of the events');

-- ---------------------------------------------------------------------------
-- Batches that start as new events and must be judged one by one: a retry
-- after new events (as sent, and reusing its key differently), a key twice.
select '[
  {"idempotency_key": "m1", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5},
  {"idempotency_key": "m2", "model": "gpt-4o-mini", "prompt_tokens": 20, "completion_tokens": 5},
  {"idempotency_key": "n1", "model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 20},
  {"idempotency_key": "n4", "model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1},
  {"idempotency_key": "m1", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5},
  {"idempotency_key": "m3", "model": "gpt-4o-mini", "prompt_tokens": 30, "completion_tokens": 5}
]' as mixed_events \gset

set local role service_role;
select pg_temp.batch(:'batch', :'mixed_events') as mixed_answer \gset
select pg_temp.one_by_one(:'single', :'mixed_events') as mixed_single \gset
reset role;

select is(pg_temp.comparable(:'mixed_answer'), pg_temp.comparable(:'mixed_single'),
  'a batch with retries and a repeated key answers as the events sent one by one');
select is(:'mixed_answer'::jsonb - 'results', '{"recorded": 3, "replayed": 2, "rejected": 1}'::jsonb,
  'three recorded, two replayed, one reused key refused');
select is(pg_temp.outcome(:'batch'), pg_temp.outcome(:'single'),
  'the abandoned first attempt leaves no row and no debit behind');
select is(tests.summary_mismatches('analytics.daily_token_summary', (:'batch'::jsonb ->> 'user')::uuid), 0::bigint,
  'nor anything in the daily summary');
select is(pg_temp.answered_rows(:'mixed_answer'), pg_temp.ledger_rows(:'batch', array['m1', 'm2', 'n1', 'm1', 'm3']),
  'each recorded or replayed event names its ledger row');

-- ---------------------------------------------------------------------------
-- A retry naming a project deleted since it was recorded replays; a new
-- event naming it is refused.
delete from platform.projects where id in ((:'batch'::jsonb ->> 'P')::uuid, (:'single'::jsonb ->> 'P')::uuid);
select '[
  {"idempotency_key": "d1", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5},
  {"idempotency_key": "d2", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5, "project_id": "P"}
]' as new_deleted \gset
select '[
  {"idempotency_key": "d3", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5},
  {"idempotency_key": "n2", "model": "claude-3-5-haiku", "prompt_tokens": 300, "completion_tokens": 400,
   "project_id": "P", "metadata": {"trace": "t"}}
]' as retried_deleted \gset

set local role service_role;
select pg_temp.batch(:'batch', :'new_deleted') as new_deleted_answer \gset
select pg_temp.one_by_one(:'single', :'new_deleted') as new_deleted_single \gset
select pg_temp.batch(:'batch', :'retried_deleted') as retried_deleted_answer \gset
select pg_temp.one_by_one(:'single', :'retried_deleted') as retried_deleted_single \gset
reset role;

select is(pg_temp.comparable(:'new_deleted_answer'), pg_temp.comparable(:'new_deleted_single'),
  'a new event naming a deleted project is refused, as one by one');
select is(pg_temp.comparable(:'retried_deleted_answer'), pg_temp.comparable(:'retried_deleted_single'),
  'a retry naming it replays, as one by one');
select is(
  (select array_agg(r ->> 'status' order by i)
     from jsonb_array_elements(:'new_deleted_answer'::jsonb -> 'results' || (:'retried_deleted_answer'::jsonb -> 'results'))
          with ordinality t(r, i)),
  array['recorded', 'rejected', 'recorded', 'replayed'],
  'recorded, refused; recorded, replayed');
select is(pg_temp.outcome(:'batch'), pg_temp.outcome(:'single'),
  'and the ledger and balance agree');

-- ---------------------------------------------------------------------------
-- A new event naming a hold settles it, as one by one.
select tests.grant_tokens((:'batch'::jsonb ->> 'user')::uuid, 1000);
select tests.grant_tokens((:'single'::jsonb ->> 'user')::uuid, 1000);
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select platform.reserve_tokens(40, 600, (:'batch'::jsonb ->> 'user')::uuid) ->> 'reservation_id' as batch_hold \gset
select platform.reserve_tokens(40, 600, (:'single'::jsonb ->> 'user')::uuid) ->> 'reservation_id' as single_hold \gset
select pg_temp.batch(:'batch', format('[
  {"idempotency_key": "h1", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5},
  {"idempotency_key": "h2", "model": "gpt-4o-mini", "prompt_tokens": 30, "completion_tokens": 5,
   "reservation_id": "%s"}]', :'batch_hold')::jsonb) as hold_answer \gset
select pg_temp.one_by_one(:'single', format('[
  {"idempotency_key": "h1", "model": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5},
  {"idempotency_key": "h2", "model": "gpt-4o-mini", "prompt_tokens": 30, "completion_tokens": 5,
   "reservation_id": "%s"}]', :'single_hold')::jsonb) as hold_single \gset
reset role;

select is(pg_temp.comparable(:'hold_answer'), pg_temp.comparable(:'hold_single'),
  'a batch naming a hold settles it as one by one');
select is(pg_temp.outcome(:'batch'), pg_temp.outcome(:'single'),
  'and releases the hold from the balance as one by one');

select * from finish();
rollback;
