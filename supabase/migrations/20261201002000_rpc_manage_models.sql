-- Managing the model catalogue: upsert_model and deactivate_model, for admins
-- (PUT and DELETE /v1/admin/models/{name} at the edge) and the service role.
--
-- A model is never deleted: the usage ledger references it, and its recorded
-- costs stay as they were. Deactivating it refuses new usage (as for any
-- inactive model: `unknown_model`) and hides it from list_models. A price
-- change applies to usage recorded from then on; rows already in the ledger
-- keep the cost computed when they were recorded.

-- A model as the admin routes answer it.
create or replace function platform.model_answer(p_model platform.models)
returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'name', p_model.name,
    'provider', p_model.provider,
    'repo_url', p_model.repo_url,
    'context_size', p_model.context_size,
    'input_cost_per_1k_tokens', p_model.input_cost_per_1k_tokens,
    'output_cost_per_1k_tokens', p_model.output_cost_per_1k_tokens,
    'metadata', p_model.metadata,
    'is_active', p_model.is_active,
    'created_at', p_model.created_at,
    'updated_at', p_model.updated_at
  )
$$;
revoke execute on function platform.model_answer(platform.models)
  from public, anon, authenticated, service_role;

-- POST /rpc/upsert_model: creates the model named p_name, or replaces the
-- description of the one that exists (every field as given; the edge fills
-- the defaults of fields a request leaves out). Answers the model and
-- `created`. A call that changes nothing writes nothing, so updated_at stays
-- the time of the last real change. The table's constraints are the rules;
-- a value that breaks one is refused with 422 `invalid_model` naming it.
create or replace function platform.upsert_model(
  p_name text,
  p_provider text,
  p_context_size integer,
  p_input_cost_per_1k_tokens numeric,
  p_output_cost_per_1k_tokens numeric,
  p_repo_url text default null,
  p_metadata jsonb default '{}',
  p_is_active boolean default true
) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_model platform.models;
  v_created boolean;
  v_rule text;
  v_column text;
begin
  if not (platform.is_service_role() or platform.is_admin()) then
    perform platform.fail('PT403', 'forbidden', 'only admins manage models');
  end if;

  begin
    -- Insert, or leave a concurrent or existing row to the update below: a
    -- conflict waits for the other writer, so the update then sees its row.
    insert into platform.models (name, provider, repo_url, context_size, input_cost_per_1k_tokens,
                                 output_cost_per_1k_tokens, metadata, is_active)
    values (p_name, p_provider, p_repo_url, p_context_size, p_input_cost_per_1k_tokens,
            p_output_cost_per_1k_tokens, p_metadata, p_is_active)
    on conflict (name) do nothing
    returning * into v_model;
    v_created := v_model.id is not null;
    if not v_created then
      update platform.models m
         set provider = p_provider, repo_url = p_repo_url, context_size = p_context_size,
             input_cost_per_1k_tokens = p_input_cost_per_1k_tokens,
             output_cost_per_1k_tokens = p_output_cost_per_1k_tokens,
             metadata = p_metadata, is_active = p_is_active
       where m.name = p_name
         and (m.provider, m.repo_url, m.context_size, m.input_cost_per_1k_tokens,
              m.output_cost_per_1k_tokens, m.metadata, m.is_active)
             is distinct from
             (p_provider, p_repo_url, p_context_size, p_input_cost_per_1k_tokens::numeric(14, 6),
              p_output_cost_per_1k_tokens::numeric(14, 6), p_metadata, p_is_active)
      returning * into v_model;
      if v_model.id is null then
        select * into strict v_model from platform.models m where m.name = p_name;
      end if;
    end if;
  exception
    when check_violation or not_null_violation then
      get stacked diagnostics v_rule = constraint_name, v_column = column_name;
      perform platform.fail('PT422', 'invalid_model',
        case when v_rule <> '' then format('the model breaks the rule %s', v_rule)
             else format('%s is required', v_column) end);
    when numeric_value_out_of_range then
      perform platform.fail('PT422', 'invalid_model',
        'a price per 1k tokens is at most 99999999.999999');
  end;
  return platform.model_answer(v_model) || jsonb_build_object('created', v_created);
end
$$;
revoke execute on function
  platform.upsert_model(text, text, integer, numeric, numeric, text, jsonb, boolean)
  from public, anon, authenticated, service_role;
grant execute on function
  platform.upsert_model(text, text, integer, numeric, numeric, text, jsonb, boolean)
  to authenticated, service_role;

-- POST /rpc/deactivate_model: takes the model out of use (is_active = false);
-- the row stays, for the ledger rows that reference it. Deactivating an
-- inactive model changes nothing. An unknown name is refused with 404
-- `unknown_model`.
create or replace function platform.deactivate_model(p_name text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  v_model platform.models;
begin
  if not (platform.is_service_role() or platform.is_admin()) then
    perform platform.fail('PT403', 'forbidden', 'only admins manage models');
  end if;
  update platform.models m set is_active = false
   where m.name = p_name and m.is_active
  returning * into v_model;
  if v_model.id is null then
    select * into v_model from platform.models m where m.name = p_name;
    if not found then
      perform platform.fail('PT404', 'unknown_model', format('unknown model %L', left(p_name, 128)));
    end if;
  end if;
  return platform.model_answer(v_model);
end
$$;
revoke execute on function platform.deactivate_model(text) from public, anon, authenticated, service_role;
grant execute on function platform.deactivate_model(text) to authenticated, service_role;
