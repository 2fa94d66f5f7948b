-- wrk script for `cargo xtask bench`: POST usage events with a fresh
-- Idempotency-Key per request, spreading requests over the users whose
-- access tokens are listed one per line in a file.
--
--   wrk ... -s bench/wrk/usage.lua <url> -- <mode> <tokens-file> <run-id> [batch-size] [anon-key]
--
-- mode: edge  POST /v1/usage on the Worker
--       batch POST /v1/usage/batch on the Worker, batch-size events each
--       rest  POST /rest/v1/rpc/record_token_usage on the REST layer, the RPC
--             the Worker calls, with the same caller token
--       batch-async  as batch, with `Prefer: respond-async` (the usage queue)
-- Each thread counts its 2xx and other answers; `done` prints one JSON line.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  run_id = args[3]
  batch_size = tonumber(args[4] or "1")
  anon_key = args[5] or ""
  tokens = {}
  for line in io.lines(args[2]) do
    if #line > 0 then table.insert(tokens, line) end
  end
  counter = 0
  ok = 0
  failed = 0
  events = 0
end

local function key()
  counter = counter + 1
  return string.format("%s-t%d-%d", run_id, id, counter)
end

function request()
  local token = tokens[(counter % #tokens) + 1]
  local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if mode == "edge" then
    headers["Idempotency-Key"] = key()
    return wrk.format("POST", "/v1/usage", headers,
      '{"model":"gpt-4o-mini","prompt_tokens":12,"completion_tokens":3}')
  elseif mode == "rest" then
    headers["apikey"] = anon_key
    headers["Content-Profile"] = "platform"
    return wrk.format("POST", "/rest/v1/rpc/record_token_usage", headers,
      string.format('{"p_model":"gpt-4o-mini","p_prompt_tokens":12,"p_completion_tokens":3,"p_idempotency_key":"%s"}', key()))
  else
    local parts = {}
    for i = 1, batch_size do
      parts[i] = string.format('{"idempotency_key":"%s","model":"gpt-4o-mini","prompt_tokens":12,"completion_tokens":3}', key())
    end
    if mode == "batch-async" then headers["Prefer"] = "respond-async" end
    return wrk.format("POST", "/v1/usage/batch", headers, '{"events":[' .. table.concat(parts, ",") .. ']}')
  end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if mode == "batch" then
      -- Partial acceptance is per event: count the events the answer recorded.
      events = events + tonumber(string.match(body, '"recorded":(%d+)') or "0")
    elseif mode == "batch-async" then
      events = events + tonumber(string.match(body, '"queued":(%d+)') or "0")
    else
      events = events + 1
    end
  else
    failed = failed + 1
    if failed <= 3 then io.stderr:write(string.format("status %d: %s\n", status, body:sub(1, 300))) end
  end
end

function done(summary, latency, requests)
  local total_ok, total_failed, total_events = 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_failed = total_failed + t:get("failed")
    total_events = total_events + t:get("events")
  end
  io.write(string.format(
    'WRK_RESULT {"ok":%d,"failed":%d,"events":%d,"socket_errors":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    total_ok, total_failed, total_events,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
