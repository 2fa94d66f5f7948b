-- POST /rpc/list_usage_events: the caller's own usage events, newest first
-- (created_at, then id, descending), a page at a time. The page after one
-- starts below its last row: p_before_us (that row's created_at in
-- microseconds since the Unix epoch) and p_before_id, both or neither. The
-- edge wraps the pair in an opaque cursor (shared::usage::events); a keyset
-- rather than an offset, so rows recorded while a client pages do not shift
-- the pages it has yet to read. Nobody reads another user's events here, an
-- admin included: the service role names the user an API key belongs to.
--
-- The answer: {"events": [...], "next": {"created_at_us", "id"} | null},
-- `next` null when no row is left. Ids and costs are strings (a bigint and a
-- numeric(20, 6) are exact there, not in a JSON number a client may read as
-- a double); created_at is RFC 3339 in UTC.
create or replace function platform.list_usage_events(
  p_limit integer default 50,
  p_before_us bigint default null,
  p_before_id bigint default null,
  p_user_id uuid default null,
  p_api_key_id uuid default null
) returns jsonb
language plpgsql stable security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
  v_uid uuid := platform.caller_user_id(p_user_id, false);
  -- Without a cursor the keyset starts above every row, so one statement,
  -- one plan, serves every page.
  v_before_at timestamptz := 'infinity';
  v_before_id bigint := 9223372036854775807;
  v_result jsonb;
begin
  perform platform.check_api_key_owner(p_api_key_id, v_uid);
  if p_limit is null or p_limit not between 1 and 100 then
    perform platform.fail('PT400', 'invalid_limit', 'limit must be a whole number from 1 to 100');
  end if;
  if (p_before_us is null) <> (p_before_id is null) or p_before_us < 0 or p_before_id < 1 then
    perform platform.fail('PT400', 'invalid_cursor', 'before is not a cursor this API gave');
  end if;
  if p_before_us is not null then
    -- In two exact steps: an interval times a large factor goes through a double.
    v_before_at := timestamptz 'epoch' + (p_before_us / 1000000) * interval '1 second'
                   + (p_before_us % 1000000) * interval '1 microsecond';
    v_before_id := p_before_id;
  end if;

  -- One row more than asked tells whether another page follows.
  with page as (
    select u.*, row_number() over (order by u.created_at desc, u.id desc) as n
      from (select * from platform.token_usage t
             -- `id > 0` (always true) is the listing index's predicate:
             -- naming it lets this read, and only this one, use the index.
             where t.user_id = v_uid and t.id > 0
               and (t.created_at, t.id) < (v_before_at, v_before_id)
             order by t.created_at desc, t.id desc
             limit p_limit + 1) u
  )
  select jsonb_build_object(
    'events', coalesce((
      select jsonb_agg(jsonb_build_object(
               'id', p.id::text,
               'created_at', p.created_at,
               'model', m.name,
               'prompt_tokens', p.prompt_tokens,
               'completion_tokens', p.completion_tokens,
               'total_tokens', p.total_tokens,
               'cost', p.cost::text,
               'idempotency_key', p.idempotency_key,
               'api_key_id', p.api_key_id,
               'project_id', p.project_id,
               'session_id', p.session_id) order by p.n)
        from page p join platform.models m on m.id = p.model_id
       where p.n <= p_limit), '[]'),
    'next', (
      select jsonb_build_object('created_at_us', (extract(epoch from p.created_at) * 1000000)::bigint,
                                'id', p.id)
        from page p
       where p.n = p_limit and exists (select 1 from page q where q.n = p_limit + 1))
  ) into v_result;
  return v_result;
end
$$;
revoke execute on function platform.list_usage_events(integer, bigint, bigint, uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function platform.list_usage_events(integer, bigint, bigint, uuid, uuid)
  to authenticated, service_role;
