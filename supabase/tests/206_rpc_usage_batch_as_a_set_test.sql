-- record_token_usage_batch judges every event and then writes the new rows
-- as a set. A batch must answer and write exactly what the same events sent
-- one by one to record_token_usage answer and write, including the cases the
-- set has to work out for itself: a key rejected, then recorded, then retried
-- and then reused within the batch; one hold named twice; a hold past its
-- expiry; a hold that does not exist; usage past the balance.
begin;
select plan(6);

select tests.create_user('batch@example.test') as batch_user \gset
select tests.create_user('single@example.test') as single_user \gset
select tests.grant_tokens(:'batch_user', 1000);
select tests.grant_tokens(:'single_user', 1000);

-- The events, for a user whose first hold is h1 and whose second (past its
-- expiry, not yet swept) is h2.
create function pg_temp.events(p_h1 uuid, p_h2 uuid) returns jsonb language sql as $$
  select jsonb_build_array(
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 100, 'completion_tokens', 50, 'idempotency_key', 'k1', 'reservation_id', p_h1),
    jsonb_build_object('model', 'no-such-model', 'prompt_tokens', 1, 'completion_tokens', 1, 'idempotency_key', 'k2'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 10, 'completion_tokens', 0, 'idempotency_key', 'k2'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 10, 'completion_tokens', 0, 'idempotency_key', 'k2'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 11, 'completion_tokens', 0, 'idempotency_key', 'k2'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 20, 'completion_tokens', 0, 'idempotency_key', 'k3', 'reservation_id', p_h1),
    jsonb_build_object('model', 'claude-3-5-haiku', 'prompt_tokens', 5, 'completion_tokens', 5, 'idempotency_key', 'k4', 'reservation_id', p_h2),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 1, 'completion_tokens', 1, 'idempotency_key', 'k5',
                       'reservation_id', '00000000-0000-4000-8000-000000000000'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', -1, 'completion_tokens', 0, 'idempotency_key', 'k6'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 900, 'completion_tokens', 0, 'idempotency_key', 'k7'),
    jsonb_build_object('model', 'gpt-4o-mini', 'prompt_tokens', 100, 'completion_tokens', 50, 'idempotency_key', 'k1', 'reservation_id', p_h1))
$$;

-- Two holds per user; the second is moved past its expiry.
-- Security definer: moving a hold's expiry is a superuser's edit, not an RPC.
create function pg_temp.holds(p_user uuid) returns uuid[] language plpgsql security definer as $$
declare v_h1 uuid; v_h2 uuid;
begin
  v_h1 := (platform.reserve_tokens(300, 600, p_user) ->> 'reservation_id')::uuid;
  v_h2 := (platform.reserve_tokens(200, 600, p_user) ->> 'reservation_id')::uuid;
  update platform.token_reservations
     set created_at = now() - interval '1 hour', expires_at = now() - interval '1 second'
   where id = v_h2;
  return array[v_h1, v_h2];
end
$$;

-- An answer without what differs between two users by construction.
create function pg_temp.comparable(p_answer jsonb, p_holds uuid[]) returns jsonb language sql as $$
  select (p_answer - 'index' - 'usage_id' - 'created_at')
    || case when p_answer ? 'reservation' and p_answer -> 'reservation' <> 'null'::jsonb then
         jsonb_build_object('reservation', (p_answer -> 'reservation')
           || jsonb_build_object('id', case (p_answer -> 'reservation' ->> 'id')::uuid
                                         when p_holds[1] then 'h1' when p_holds[2] then 'h2' else 'other' end))
       else '{}'::jsonb end
$$;

-- The same events one by one, each answered as the batch answers it.
create function pg_temp.one_by_one(p_user uuid, p_events jsonb) returns jsonb[] language plpgsql as $$
declare
  v_event jsonb;
  v_answer jsonb;
  v_answers jsonb[] := '{}';
  v_message text;
  v_hint text;
begin
  for v_event in select e from jsonb_array_elements(p_events) e loop
    begin
      v_answer := platform.record_token_usage(v_event ->> 'model', (v_event ->> 'prompt_tokens')::bigint,
        (v_event ->> 'completion_tokens')::bigint, v_event ->> 'idempotency_key',
        p_reservation_id => (v_event ->> 'reservation_id')::uuid, p_user_id => p_user);
      v_answer := jsonb_build_object('status',
        case when (v_answer ->> 'replayed')::boolean then 'replayed' else 'recorded' end) || v_answer;
    exception when others then
      get stacked diagnostics v_message = message_text, v_hint = pg_exception_hint;
      v_answer := jsonb_build_object('status', 'rejected',
        'error', jsonb_build_object('code', v_hint, 'message', v_message));
    end;
    v_answers := v_answers || v_answer;
  end loop;
  return v_answers;
end
$$;

create function pg_temp.ledger(p_user uuid, p_holds uuid[]) returns setof text language sql as $$
  select format('%s %s+%s %s %s %s', m.name, u.prompt_tokens, u.completion_tokens, u.idempotency_key,
                u.balance_after, coalesce(u.reservation_outcome, '-'))
    from platform.token_usage u join platform.models m on m.id = u.model_id
   where u.user_id = p_user order by u.id
$$;

-- The helpers above are called under the API roles below; functions are not
-- executable by PUBLIC unless granted (the migrations revoke that default).
grant execute on all functions in schema pg_temp to public;

select tests.authenticate_as_service_role();
select pg_temp.holds(:'batch_user') as batch_holds \gset
select pg_temp.holds(:'single_user') as single_holds \gset

select platform.record_token_usage_batch(pg_temp.events((:'batch_holds'::uuid[])[1], (:'batch_holds'::uuid[])[2]),
  :'batch_user') as batch_answer \gset
select pg_temp.one_by_one(:'single_user', pg_temp.events((:'single_holds'::uuid[])[1], (:'single_holds'::uuid[])[2]))
  as single_answers \gset
select tests.clear_authentication();

select is(
  (select array_agg(pg_temp.comparable(r, :'batch_holds'::uuid[]) order by i)
     from jsonb_array_elements(:'batch_answer'::jsonb -> 'results') with ordinality t(r, i)),
  (select array_agg(pg_temp.comparable(r, :'single_holds'::uuid[]) order by i)
     from unnest(:'single_answers'::jsonb[]) with ordinality t(r, i)),
  'every event of the batch is answered as it is when sent on its own');
select is(
  (select array_agg(r ->> 'status' order by i) from jsonb_array_elements(:'batch_answer'::jsonb -> 'results') with ordinality t(r, i)),
  array['recorded', 'rejected', 'recorded', 'replayed', 'rejected', 'recorded', 'recorded', 'recorded', 'rejected',
        'recorded', 'replayed'],
  'the cases are the ones meant: rejections, a key recorded after its rejection, retries in the batch');
select is(:'batch_answer'::jsonb -> 'results' -> 10 -> 'usage_id', :'batch_answer'::jsonb -> 'results' -> 0 -> 'usage_id',
  'a retry within the batch answers the row its first event wrote');
select is(array(select pg_temp.ledger(:'batch_user', :'batch_holds'::uuid[])),
          array(select pg_temp.ledger(:'single_user', :'single_holds'::uuid[])),
  'the ledger rows, in order, with their balances and hold outcomes, are the same');
select is(
  (select array_agg(status order by created_at, tokens desc) from platform.token_reservations where user_id = :'batch_user'),
  (select array_agg(status order by created_at, tokens desc) from platform.token_reservations where user_id = :'single_user'),
  'the holds end the same: the first settled once, the second expired');
select is(
  (select row(granted, used, reserved) from platform.token_balances where user_id = :'batch_user')::text,
  (select row(granted, used, reserved) from platform.token_balances where user_id = :'single_user')::text,
  'the balances end the same');

select * from finish();
rollback;
