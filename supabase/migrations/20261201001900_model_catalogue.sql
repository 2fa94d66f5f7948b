-- The model catalogue as reference data. It lives in a migration, not in
-- seed.sql, because `supabase db push` does not run the seed: a hosted project
-- would otherwise have no models, and every usage event would be refused with
-- `unknown_model`.
--
-- Insert-only: a model already in the catalogue is left exactly as it is, so
-- re-running this file changes nothing and never overwrites a price or a
-- deactivation an admin made since (PUT and DELETE /v1/admin/models/{name}).
--
-- Input and output tokens are priced alike here, at the catalogue's one price
-- per model; an admin may set them apart, as a provider prices them.
insert into platform.models
  (name, provider, repo_url, context_size, input_cost_per_1k_tokens, output_cost_per_1k_tokens, metadata)
values
  ('bge-small-en-v1.5', 'postgresml', 'https://huggingface.co/BAAI/bge-small-en-v1.5', 512,
   0.000020, 0.000020, '{"kind": "embedding", "dimensions": 384}'),
  ('gpt-4o-mini', 'openai', null, 128000,
   0.000600, 0.000600, '{"kind": "chat"}'),
  ('claude-3-5-haiku', 'anthropic', null, 200000,
   0.004000, 0.004000, '{"kind": "chat"}'),
  ('llama-3.1-8b-instruct', 'meta', 'https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct', 131072,
   0.000200, 0.000200, '{"kind": "chat", "open_weights": true}'),
  ('mistral-7b-instruct', 'mistral', 'https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3', 32768,
   0.000150, 0.000150, '{"kind": "chat", "open_weights": true}')
on conflict (name) do nothing;
