-- How resolve_api_key compares a presented secret: it finds the key by its
-- (public) prefix and compares the hashes as HMACs under a per-call random
-- key, so no comparison of secret material can stop early on attacker-chosen
-- bytes. No SQL function compares secret_hash with a plain operator.
begin;
select plan(6);

select tests.create_user('carol@example.test') as carol \gset
insert into platform.api_keys (id, user_id, name, prefix, secret_hash, scopes) values
  ('30000000-0000-4000-8000-00000000c001', :'carol', 'one', 'cds_carol0010000000000000000', repeat('a', 64), array['usage:write']),
  ('30000000-0000-4000-8000-00000000c002', :'carol', 'two', 'cds_carol0020000000000000000', repeat('b', 64), array['usage:write']);

select is(
  (select count(*)::int
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('platform', 'analytics', 'telemetry')
      and p.prosrc ~* 'secret_hash\s*(=|<>|!=|is\s+(not\s+)?distinct)|(=|<>|!=|distinct\s+from)\s*p_secret_hash'),
  0,
  'no function compares a secret hash with a plain operator');

select tests.authenticate_as_service_role();
select is(platform.resolve_api_key('cds_carol0010000000000000000', repeat('a', 64)) ->> 'key_id',
  '30000000-0000-4000-8000-00000000c001', 'the right secret for the prefix resolves');
select is(tests.refusal_code($$ select platform.resolve_api_key('cds_carol0010000000000000000', repeat('b', 64)) $$),
  'invalid_api_key', 'another key''s secret under this prefix is refused');
select is(tests.refusal_code($$ select platform.resolve_api_key('cds_carol0010000000000000000', repeat('a', 63) || 'b') $$),
  'invalid_api_key', 'a secret one byte off is refused');
select is(tests.refusal_code($$ select platform.resolve_api_key('cds_carol0010000000000000000', null) $$),
  'invalid_api_key', 'no secret is refused');
select is(tests.refusal_code($$ select platform.resolve_api_key('cds_carol0090000000000000000', repeat('a', 64)) $$),
  'invalid_api_key', 'an unknown prefix is refused, whatever the secret');
select tests.clear_authentication();

select * from finish();
rollback;
