-- A retried grant answers the first answer, even after the balance moved;
-- a key reused with another reason is refused.
begin;
select plan(4);

select tests.create_user('granted@example.com') as granted \gset
select tests.authenticate_as_service_role();
select platform.grant_user_tokens(:'granted', 100, 'welcome', 'grant-key') as first \gset
select platform.record_token_usage('gpt-4o-mini', 5, 5, 'spend-1', p_user_id => :'granted');

select is((platform.grant_user_tokens(:'granted', 100, 'welcome', 'grant-key') - 'replayed'),
  (:'first'::jsonb - 'replayed'), 'the retry answers the first answer, balance included');
select is((platform.grant_user_tokens(:'granted', 100, 'welcome', 'grant-key') ->> 'replayed')::boolean,
  true, 'and says it is a replay');
select throws_ok(format($$ select platform.grant_user_tokens(%L, 100, 'another reason', 'grant-key') $$, :'granted'),
  'PT409', 'this idempotency key was already used for a different grant',
  'the same key for a grant with another reason is refused');
select is((select granted from platform.token_balances where user_id = :'granted'), 100::bigint,
  'the balance was credited once');

select * from finish();
rollback;
