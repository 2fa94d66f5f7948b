-- The balance invariant across every RPC that moves tokens: for each user,
--   granted = sum(token_grants.amount), used = sum(token_usage.total_tokens),
--   balance = granted - used, reserved = sum(tokens of active reservations),
-- and every settled hold points to the usage row that settled it. First a
-- scripted sequence with exact numbers, then a seeded random walk of a few
-- hundred calls (grants, records, batches, reservations, releases, lapses,
-- sweeps, with retries and refusals) after which the invariant must still hold.
begin;
select plan(14);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('bob@example.test') as bob \gset
select tests.create_user('carol@example.test') as carol \gset
select tests.create_user('dave@example.test') as dave \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset

-- ---------------------------------------------------------------------------
-- Scripted: Alice.
select tests.authenticate_as(:'adam');
select platform.grant_user_tokens(:'alice', 1000, 'welcome', 'g1') \g /dev/null
select platform.grant_user_tokens(:'alice', 1000, 'welcome', 'g1') \g /dev/null
select tests.authenticate_as_service_role();
select platform.grant_user_tokens(:'alice', 500, 'purchase') \g /dev/null
select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 150, 50, 'u1') \g /dev/null
select platform.record_token_usage('gpt-4o-mini', 150, 50, 'u1') \g /dev/null
select platform.record_token_usage_batch('[
  {"model": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 0, "idempotency_key": "u2"},
  {"model": "nope", "prompt_tokens": 1, "completion_tokens": 0, "idempotency_key": "bad"},
  {"model": "gpt-4o-mini", "prompt_tokens": 150, "completion_tokens": 50, "idempotency_key": "u1"},
  {"model": "claude-3-5-haiku", "prompt_tokens": 25, "completion_tokens": 25, "idempotency_key": "u3"}
]') \g /dev/null
select platform.reserve_tokens(300) ->> 'reservation_id' as r1 \gset
select platform.reserve_tokens(400) ->> 'reservation_id' as r2 \gset
select platform.record_token_usage('gpt-4o-mini', 200, 50, 'u4', p_reservation_id => :'r1') \g /dev/null
select platform.release_token_reservation(:'r2') \g /dev/null
select platform.reserve_tokens(200) ->> 'reservation_id' as r3 \gset
select platform.reserve_tokens(100) ->> 'reservation_id' as r4 \gset
select tests.clear_authentication();
update platform.token_reservations set created_at = now() - interval '10 minutes', expires_at = now() - interval '1 minute'
 where id = :'r3';
select tests.authenticate_as_service_role();
select platform.release_expired_reservations() \g /dev/null
select tests.clear_authentication();
update platform.token_reservations set created_at = now() - interval '10 minutes', expires_at = now() - interval '1 minute'
 where id = :'r4';
select tests.authenticate_as(:'alice');
select platform.reserve_tokens(50) ->> 'reservation_id' as r5 \gset
select platform.record_token_usage('gpt-4o-mini', 30, 0, 'u5', p_reservation_id => :'r4') \g /dev/null
select throws_ok($$select platform.reserve_tokens(10000)$$, 'PT402', '10000 tokens requested, 820 available',
  'mid-sequence, what is available is the balance minus active holds');
select platform.record_token_usage('gpt-4o-mini', 5000, 0, 'u6') \g /dev/null
select tests.clear_authentication();

select results_eq(
  format($$select granted, used, reserved, balance from platform.token_balances where user_id = %L$$, :'alice'),
  $$values (1500::bigint, 5630::bigint, 50::bigint, -4130::bigint)$$,
  'after the scripted sequence: grants 1500 counted once, usage 5630 counted once, one 50-token hold active');
select results_eq(
  format($$select status, count(*)::int from platform.token_reservations where user_id = %L group by 1 order by 1$$, :'alice'),
  $$values ('active'::text, 1), ('expired', 2), ('released', 1), ('settled', 1)$$,
  'the holds ended as expected: one settled, one released, two expired, one active');

-- ---------------------------------------------------------------------------
-- A seeded random walk for Bob, Carol and Dave.
create temp table walk (op text, outcome text);
select set_config('walk.users', concat_ws(',', :'bob', :'carol', :'dave'), true) \g /dev/null
select tests.grant_tokens(:'bob', 3000);
select tests.grant_tokens(:'carol', 1000);

do $$
declare
  v_users uuid[] := string_to_array(current_setting('walk.users'), ',')::uuid[];
  v_models text[] := array['gpt-4o-mini', 'claude-3-5-haiku', 'llama-3.1-8b-instruct'];
  v_user uuid;
  v_r float8;
  v_k int;
  v_res uuid;
  v_result jsonb;
  v_events jsonb;
  v_hint text;
  v_op text;
  i int;
  j int;
begin
  perform setseed(0.4242);
  for i in 1 .. 800 loop
    v_user := v_users[1 + floor(random() * 3)::int];
    v_r := random();
    v_k := floor(random() * 150)::int;
    -- A recent hold of this user (any status), an unknown one, or none.
    select r.id into v_res from platform.token_reservations r where r.user_id = v_user
     order by random() limit 1;
    if random() < 0.4 then v_res := null; elsif random() < 0.2 then v_res := gen_random_uuid(); end if;
    perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
    begin
      if v_r < 0.12 then
        v_op := 'grant';
        -- One amount per key, sometimes a different one: retries and reuse.
        v_result := platform.grant_user_tokens(v_user, 200 + (v_k % 10) * 50 + (random() < 0.2)::int, 'walk',
                                               case when random() < 0.3 then null else 'g-' || (v_k % 10) end);
        insert into walk values (v_op, case when (v_result ->> 'replayed')::boolean then 'replayed' else 'ok' end);
      elsif v_r < 0.40 then
        v_op := 'record';
        v_result := platform.record_token_usage(v_models[1 + v_k % 3], (v_k * 37) % 100 + (random() < 0.15)::int,
                      (v_k * 11) % 20, 'u-' || v_k, p_reservation_id => v_res, p_user_id => v_user);
        insert into walk values (v_op, case when (v_result ->> 'replayed')::boolean then 'replayed'
                                            when (v_result ->> 'exhausted')::boolean then 'exhausted' else 'ok' end);
        if not (v_result ->> 'replayed')::boolean and v_result -> 'reservation' <> 'null' then
          insert into walk values ('settle', v_result -> 'reservation' ->> 'outcome');
        end if;
      elsif v_r < 0.52 then
        v_op := 'batch';
        select jsonb_agg(jsonb_build_object('model', case when random() < 0.1 then 'nope' else v_models[1 + k % 3] end,
                 'prompt_tokens', (k * 37) % 100, 'completion_tokens', (k * 11) % 20, 'idempotency_key', 'u-' || k))
          into v_events
          from (select floor(random() * 150)::int as k from generate_series(1, 1 + floor(random() * 5)::int)) e;
        v_result := platform.record_token_usage_batch(v_events, v_user);
        insert into walk select v_op, s from jsonb_array_elements(v_result -> 'results') r,
                                             lateral (select r ->> 'status' as s) x;
      elsif v_r < 0.75 then
        v_op := 'reserve';
        v_result := platform.reserve_tokens(1 + floor(random() * 150)::bigint, 60, v_user);
        insert into walk values (v_op, 'ok');
      elsif v_r < 0.85 then
        v_op := 'release';
        if v_res is null then
          continue;
        end if;
        v_result := platform.release_token_reservation(v_res, v_user);
        insert into walk values (v_op, v_result ->> 'status');
      elsif v_r < 0.95 then
        v_op := 'lapse';
        update platform.token_reservations r
           set created_at = now() - interval '10 minutes', expires_at = now() - interval '1 second'
         where r.id = (select r2.id from platform.token_reservations r2
                        where r2.user_id = v_user and r2.status = 'active' order by random() limit 1);
        insert into walk values (v_op, 'ok');
      else
        v_op := 'sweep';
        v_result := platform.release_expired_reservations();
        insert into walk values (v_op, case when (v_result ->> 'released')::int > 0 then 'released' else 'none' end);
      end if;
    exception when others then
      get stacked diagnostics v_hint = pg_exception_hint;
      if sqlstate not like 'PT%' then
        raise;
      end if;
      insert into walk values (v_op, v_hint);
    end;
  end loop;
  perform set_config('request.jwt.claims', '', true);
end
$$;

select is_empty(
  $$select * from (values ('grant', 'ok'), ('grant', 'replayed'), ('grant', 'idempotency_key_reused'),
                          ('record', 'ok'), ('record', 'replayed'), ('record', 'exhausted'), ('record', 'idempotency_key_reused'),
                          ('settle', 'settled'), ('settle', 'not_active'), ('settle', 'not_found'),
                          ('batch', 'recorded'), ('batch', 'replayed'), ('batch', 'rejected'),
                          ('reserve', 'ok'), ('reserve', 'insufficient_balance'),
                          ('release', 'released'), ('release', 'settled'), ('release', 'expired'),
                          ('lapse', 'ok'), ('sweep', 'released')) expected(op, outcome)
    except select op, outcome from walk$$,
  'the random walk exercised every kind of call and outcome, refusals included');

-- ---------------------------------------------------------------------------
-- The invariant, for every user (scripted and random).
select results_eq(
  $$select b.user_id, b.granted from platform.token_balances b order by 1$$,
  $$select u.id, coalesce((select sum(g.amount) from platform.token_grants g where g.user_id = u.id), 0)::bigint
      from platform.users u join platform.token_balances b on b.user_id = u.id order by 1$$,
  'granted equals the sum of the grants ledger, for every user');
select results_eq(
  $$select b.user_id, b.used from platform.token_balances b order by 1$$,
  $$select u.id, coalesce((select sum(t.total_tokens) from platform.token_usage t where t.user_id = u.id), 0)::bigint
      from platform.users u join platform.token_balances b on b.user_id = u.id order by 1$$,
  'used equals the sum of the usage ledger, for every user');
select results_eq(
  $$select b.user_id, b.balance from platform.token_balances b order by 1$$,
  $$select u.id, coalesce((select sum(g.amount) from platform.token_grants g where g.user_id = u.id), 0)::bigint
                 - coalesce((select sum(t.total_tokens) from platform.token_usage t where t.user_id = u.id), 0)::bigint
      from platform.users u join platform.token_balances b on b.user_id = u.id order by 1$$,
  'balance equals sum(grants) minus sum(usage), for every user');
select results_eq(
  $$select b.user_id, b.reserved from platform.token_balances b order by 1$$,
  $$select u.id, coalesce((select sum(r.tokens) from platform.token_reservations r
                            where r.user_id = u.id and r.status = 'active'), 0)::bigint
      from platform.users u join platform.token_balances b on b.user_id = u.id order by 1$$,
  'reserved equals the sum of active reservations, for every user');
select is_empty(
  $$select r.id from platform.token_reservations r
     where r.status = 'settled'
       and not exists (select 1 from platform.token_usage t
                        where t.id = r.usage_id and t.user_id = r.user_id and t.reservation_id = r.id
                          and t.reservation_outcome = 'settled')$$,
  'every settled hold points to the usage row that settled it');
select is_empty(
  $$select t.id from platform.token_usage t
     where t.reservation_outcome = 'settled'
       and not exists (select 1 from platform.token_reservations r where r.id = t.reservation_id and r.usage_id = t.id)$$,
  'every usage row that settled a hold is the one that hold points to');
select is_empty(
  $$select r.id from platform.token_reservations r where r.status <> 'settled' and r.usage_id is not null$$,
  'only settled holds point to usage');
select is_empty(
  $$select t.id from platform.token_usage t
      join platform.models m on m.id = t.model_id
     where t.cost <> round((t.prompt_tokens * m.input_cost_per_1k_tokens
                            + t.completion_tokens * m.output_cost_per_1k_tokens) / 1000, 6)$$,
  'every usage row is priced at its model''s input and output prices per 1k tokens');
select ok((select count(*) from platform.token_usage) > 50 and (select count(*) from platform.token_reservations) > 50,
  'the walk wrote enough rows for the invariant to mean something');
select ok(exists (select 1 from platform.token_balances where balance < 0)
          and exists (select 1 from platform.token_balances where reserved > 0),
  'the walk ended with a negative balance somewhere and holds still active somewhere');

select * from finish();
rollback;
