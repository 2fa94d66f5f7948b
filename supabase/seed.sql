-- Seed data for local development and tests; re-runnable.
-- (The model catalogue arrives with the database issue.)
select 1;
