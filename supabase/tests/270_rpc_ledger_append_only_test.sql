-- The ledgers (platform.token_usage, platform.token_grants) are append-only
-- for everyone: the roles have no UPDATE privilege, and a trigger refuses any
-- UPDATE even where a privilege exists (the table owner, a superuser, or a
-- role granted UPDATE by mistake). Deleting a user still cascades to their rows.
begin;
select plan(18);

select tests.create_user('alice@example.test') as alice \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset
select tests.grant_tokens(:'alice', 1000);
select tests.authenticate_as(:'alice');
select platform.record_token_usage('gpt-4o-mini', 100, 50, 'evt-1') \g /dev/null
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- The table owner's path (this superuser session owns the tables).
select throws_ok(format($$update platform.token_usage set total_tokens = 0, prompt_tokens = 0, completion_tokens = 0
                          where user_id = %L$$, :'alice'),
  'PT409', 'token_usage is an append-only ledger', 'the owner cannot rewrite a usage row');
select is(tests.refusal_code(format($$update platform.token_usage set metadata = '{"x": 1}' where user_id = %L$$, :'alice')),
  'ledger_is_append_only', 'the refusal carries the code ledger_is_append_only');
select throws_ok(format($$update platform.token_usage set idempotency_key = idempotency_key where user_id = %L$$, :'alice'),
  'PT409', 'token_usage is an append-only ledger', 'even a no-op update of a usage row is refused');
select throws_ok(format($$update platform.token_grants set amount = 1000000 where user_id = %L$$, :'alice'),
  'PT409', 'token_grants is an append-only ledger', 'the owner cannot rewrite a grant');
select is(tests.refusal_code(format($$update platform.token_grants set reason = 'edited' where user_id = %L$$, :'alice')),
  'ledger_is_append_only', 'a grant''s refusal carries the code ledger_is_append_only');

-- The service role: no UPDATE privilege, and the trigger behind it.
select tests.authenticate_as_service_role();
select throws_ok($$update platform.token_usage set total_tokens = 0$$,
  '42501', 'permission denied for table token_usage', 'the service role has no UPDATE on the usage ledger');
select throws_ok($$delete from platform.token_usage$$,
  '42501', 'permission denied for table token_usage', 'the service role has no DELETE on the usage ledger');
select throws_ok(format($$insert into platform.token_usage (user_id, model_id, prompt_tokens, completion_tokens, total_tokens,
                            cost, idempotency_key, balance_after) values (%L, 1, 1, 1, 2, 0, 'direct', 0)$$, :'alice'),
  '42501', 'permission denied for table token_usage', 'the service role writes usage only through the RPCs');
select throws_ok($$update platform.token_grants set amount = 1$$,
  '42501', 'permission denied for table token_grants', 'the service role has no UPDATE on the grants ledger');
select throws_ok(format($$update platform.token_balances set used = 0 where user_id = %L$$, :'alice'),
  '42501', 'permission denied for table token_balances', 'the service role cannot set a balance directly');
select throws_ok($$update platform.token_reservations set status = 'released'$$,
  '42501', 'permission denied for table token_reservations', 'the service role cannot change holds directly');
select tests.clear_authentication();
grant update on platform.token_usage, platform.token_grants to service_role;
select tests.authenticate_as_service_role();
select throws_ok(format($$update platform.token_usage set total_tokens = 0, prompt_tokens = 0, completion_tokens = 0
                          where user_id = %L$$, :'alice'),
  'PT409', 'token_usage is an append-only ledger', 'a service role granted UPDATE by mistake is still stopped by the trigger');
select throws_ok(format($$update platform.token_grants set amount = 1 where user_id = %L$$, :'alice'),
  'PT409', 'token_grants is an append-only ledger', 'the grants trigger stops it too');

select tests.authenticate_as(:'adam');
select throws_ok($$update platform.token_usage set total_tokens = 0$$,
  '42501', 'permission denied for table token_usage', 'an admin has no UPDATE on the usage ledger');
select tests.clear_authentication();
select results_eq(
  format($$select prompt_tokens, completion_tokens, total_tokens, metadata from platform.token_usage where user_id = %L$$, :'alice'),
  $$values (100::bigint, 50::bigint, 150::bigint, '{}'::jsonb)$$,
  'the usage row is as it was recorded');
select results_eq(
  format($$select amount, reason from platform.token_grants where user_id = %L$$, :'alice'),
  $$values (1000::bigint, 'test grant'::text)$$,
  'the grant is as it was made');

-- Deleting the Supabase Auth user deletes their ledger rows (the trigger
-- refuses only UPDATE).
delete from auth.users where id = :'alice';
select is((select count(*) from platform.token_usage where user_id = :'alice'), 0::bigint,
  'deleting a user cascades to their usage rows');
select is((select count(*) from platform.token_grants where user_id = :'alice'), 0::bigint,
  'deleting a user cascades to their grants');

select * from finish();
rollback;
