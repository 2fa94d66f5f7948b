-- Who may call which function. PostgreSQL grants EXECUTE to PUBLIC on every
-- new function; take that away everywhere in our schemas, then grant each RPC
-- to exactly the roles that call it. Helpers stay private.

revoke execute on all functions in schema platform from public, anon, authenticated, service_role;

-- Called by signed-in users (the edge forwards their JWT) and by the service
-- role acting for an API key's owner.
grant execute on function
  platform.record_token_usage(text, bigint, bigint, text, uuid, uuid, jsonb, uuid, uuid, uuid),
  platform.record_token_usage_batch(jsonb, uuid, uuid),
  platform.reserve_tokens(bigint, integer, uuid, uuid),
  platform.release_token_reservation(uuid, uuid),
  platform.get_usage_overview(date, date, uuid),
  platform.grant_user_tokens(uuid, bigint, text, text)
to authenticated, service_role;

-- Signed-in users only: these act on the caller's own account.
grant execute on function
  platform.set_default_model(text),
  platform.create_api_key(text, text, text, text[], timestamptz),
  platform.revoke_api_key(uuid)
to authenticated;

-- The edge, with the service role only.
grant execute on function
  platform.mirror_auth_user(uuid, text, text, text),
  platform.resolve_api_key(text, text),
  platform.release_expired_reservations(),
  platform.refresh_daily_token_summary(),
  platform.record_execution_metric(text, text, numeric, integer, text, jsonb)
to service_role;

-- Policies call these as the querying role.
grant execute on function platform.is_admin(), platform.is_service_role() to anon, authenticated, service_role;
