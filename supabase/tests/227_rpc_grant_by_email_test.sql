-- platform.grant_user_tokens names its user by id or by email, exactly one
-- of them; an email matches whatever its case, as Supabase Auth's do.
begin;
select plan(11);

select tests.create_user('Carol.Mixed@Example.test') as carol \gset
select tests.create_user('adam@example.test', 'admin') as adam \gset

select tests.authenticate_as(:'adam');
select platform.grant_user_tokens(null, 300, 'by email', p_email => 'carol.mixed@example.test') as g1 \gset
select is((:'g1'::jsonb ->> 'user_id')::uuid, :'carol'::uuid,
  'a grant by email answers the id of the user the email names');
select is((:'g1'::jsonb ->> 'balance')::bigint, 300::bigint, 'and credits that user');
select is((platform.grant_user_tokens(null, 5, 'upper case', p_email => 'CAROL.MIXED@EXAMPLE.TEST') ->> 'user_id')::uuid,
  :'carol'::uuid, 'the email is compared without regard to case');

-- A retry by email is the same grant as by id: the key is the user's.
select platform.grant_user_tokens(:'carol', 10, 'keyed', 'email-key') as g2 \gset
select is(platform.grant_user_tokens(null, 10, 'keyed', 'email-key', 'carol.mixed@example.test') - 'replayed',
  :'g2'::jsonb - 'replayed', 'a retry naming the user by email replays the grant made by id');

select throws_ok($$select platform.grant_user_tokens(null, 1, 'r', p_email => 'nobody@example.test')$$,
  'PT404', 'no platform user has this email address', 'an email no user has is refused with 404');
select is(tests.refusal_code($$select platform.grant_user_tokens(null, 1, 'r', p_email => 'nobody@example.test')$$),
  'unknown_user', 'with the code unknown_user');
select is(tests.refusal_code(format($$select platform.grant_user_tokens(null, 1, 'r', p_email => %L)$$,
  repeat('a', 400) || '@example.test')), 'unknown_user', 'an overlong email names no user');
select throws_ok(format($$select platform.grant_user_tokens(%L, 1, 'r', p_email => 'carol.mixed@example.test')$$, :'carol'),
  'PT422', 'name the user by exactly one of user_id or email', 'an id and an email together are refused');
select is(tests.refusal_code($$select platform.grant_user_tokens(null, 1, 'r')$$),
  'invalid_grantee', 'neither an id nor an email is refused with the code invalid_grantee');

-- Nobody else is refused with the email as a way in.
select tests.authenticate_as(:'carol');
select throws_ok($$select platform.grant_user_tokens(null, 1, 'r', p_email => 'carol.mixed@example.test')$$,
  'PT403', 'only admins grant tokens', 'a developer may not grant by email either');
select tests.clear_authentication();
select is((select granted from platform.token_balances where user_id = :'carol'), 315::bigint,
  'only the accepted grants were credited');

select * from finish();
rollback;
