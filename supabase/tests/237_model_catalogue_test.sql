-- The model catalogue is reference data shipped by the migration
-- 20261201001900_model_catalogue.sql, not by seed.sql (which `supabase db push`
-- does not run): it is there after the migrations alone, and re-running the
-- migration changes nothing, not even a price or a deactivation made since.
begin;
select plan(6);

-- The catalogue as shipped.
create temp table shipped (name text, provider text, context_size integer, input_cost numeric, output_cost numeric)
  on commit drop;
insert into shipped values
  ('bge-small-en-v1.5', 'postgresml', 512, 0.000020, 0.000020),
  ('claude-3-5-haiku', 'anthropic', 200000, 0.004000, 0.004000),
  ('gpt-4o-mini', 'openai', 128000, 0.000600, 0.000600),
  ('llama-3.1-8b-instruct', 'meta', 131072, 0.000200, 0.000200),
  ('mistral-7b-instruct', 'mistral', 32768, 0.000150, 0.000150);

select set_eq(
  $$ select m.name, m.provider, m.context_size, m.input_cost_per_1k_tokens,
         m.output_cost_per_1k_tokens from platform.models m
      where m.name in (select name from shipped) and m.is_active $$,
  $$ select * from shipped $$,
  'the migrations install the catalogue, active, with its providers, context sizes and prices');

-- What an admin might have done since: a price change, a deactivation; and a
-- model missing (renamed here) so that re-running the migration has something
-- to insert, which shows the migration alone installs the catalogue.
update platform.models set input_cost_per_1k_tokens = 0.123456 where name = 'gpt-4o-mini';
update platform.models set is_active = false where name = 'mistral-7b-instruct';
update platform.models set name = 'renamed-bge-small' where name = 'bge-small-en-v1.5';
create temp table before on commit drop as
  select * from platform.models where name <> 'renamed-bge-small';

-- Re-run the migration as `supabase db push` would run it, from the checkout
-- beside these tests. `supabase test db` mounts only supabase/tests, so there
-- the file cannot be read and the checks below are skipped.
\set ON_ERROR_STOP 0
\ir ../migrations/20261201001900_model_catalogue.sql
\set ON_ERROR_STOP 1
select exists (select 1 from platform.models where name = 'bge-small-en-v1.5') as reran \gset

\if :reran
select is(
  (select count(*) from platform.models m
    where m.name <> 'bge-small-en-v1.5' and m.name <> 'renamed-bge-small'),
  (select count(*) from before where name <> 'renamed-bge-small'),
  're-running the migration adds nothing that is already there');
select set_eq(
  $$ select * from platform.models where name not in ('bge-small-en-v1.5', 'renamed-bge-small') $$,
  $$ select * from before $$,
  're-running the migration changes no existing row (updated_at included)');
select is((select input_cost_per_1k_tokens from platform.models where name = 'gpt-4o-mini'), 0.123456::numeric,
  'a price changed since is kept');
select is((select is_active from platform.models where name = 'mistral-7b-instruct'), false,
  'a deactivated model stays deactivated');
select set_eq(
  $$ select m.name, m.provider, m.context_size, m.input_cost_per_1k_tokens,
         m.output_cost_per_1k_tokens from platform.models m
      where m.name = 'bge-small-en-v1.5' and m.is_active $$,
  $$ select * from shipped where name = 'bge-small-en-v1.5' $$,
  'a catalogue model missing from the database is installed by the migration alone');
\else
select skip('the migration file is not beside the tests (supabase test db mounts only supabase/tests)', 5);
\endif

select * from finish();
rollback;
