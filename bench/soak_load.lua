-- The soak's traffic mix for wrk (bench/soak.py fills in the header and runs one wrk per instance).
-- Each request is drawn at random: 95% resolve, 4% event batch, 0.8% new version, 0.2% rollback.
-- Writes carry a marker (the run's tag, the thread and a counter) in their message or reason, so
-- the bench can count afterwards exactly what the database holds of them.

local threads = {}
local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

-- counters per kind, globals of each thread's state (done() reads them through thread:get)
n_resolve, n_event, n_version, n_rollback = 0, 0, 0, 0
local counter = 0
local resolves = {}
local get_headers = {}
local post_headers = {}

function init(args)
  math.randomseed(tid * 7919 + os.time() + INSTANCE * 104729)
  get_headers = {["Authorization"] = AUTH}
  post_headers = {["Authorization"] = AUTH, ["Content-Type"] = "application/json"}
  for i, path in ipairs(RESOLVE_PATHS) do
    resolves[i] = wrk.format("GET", path, get_headers)
  end
end

local LANGUAGES = {"English", "German", "French", "Spanish", "Japanese"}
local OUTPUTS = {
  "Thanks for reaching out. Your order %d ships within %d days.",
  "I'm sorry about the delay with order %d; a refund takes %d business days.",
  "Order %d is on its way and should arrive in %d days. Anything else?",
}

local function event_batch()
  n_event = n_event + 1
  counter = counter + 1
  local prompt = EVENT_PROMPTS[math.random(#EVENT_PROMPTS)]
  local parts = {}
  for i = 1, EVENTS_PER_BATCH do
    local rid = string.format("%s-%d-%d-%d-%d", TAG, INSTANCE, tid, counter, i)
    local order = math.random(10000, 99999)
    local latency = math.random(300, 4000)
    parts[#parts + 1] = string.format(
      '{"type":"generation","request_id":"%s","prompt":"%s","version":%d,"environment":"production",'
        .. '"output":"' .. OUTPUTS[math.random(#OUTPUTS)] .. '","input":{"question":"Where is order %d?"},'
        .. '"latency_ms":%d,"ttft_ms":%d,"input_tokens":%d,"output_tokens":%d,"cost_usd":%.6f}',
      rid, prompt[1], prompt[2], order, math.random(1, 9), order, latency, math.floor(latency / 5),
      math.random(200, 900), math.random(20, 300), math.random() / 500)
    parts[#parts + 1] = string.format(
      '{"type":"outcome","request_id":"%s","completed":%s,"thumbs":"%s","rating":%d,"latency_ms":%d}',
      rid, math.random() < 0.8 and "true" or "false", math.random() < 0.9 and "up" or "down",
      math.random(1, 5), latency)
  end
  return wrk.format("POST", "/v1/events", post_headers, '{"events":[' .. table.concat(parts, ",") .. "]}")
end

local function new_version()
  n_version = n_version + 1
  counter = counter + 1
  local path = WRITE_PATHS[math.random(#WRITE_PATHS)]
  local mark = string.format("soak %s-%d-%d-%d", TAG, INSTANCE, tid, counter)
  local body = string.format(
    '{"content":{"type":"chat","messages":[{"role":"system","content":"You are the support assistant '
      .. 'of {{ product }}. Answer in %s, in at most %d sentences. (%s)"},'
      .. '{"role":"user","content":"{{ question }}"}],'
      .. '"config":{"model":"gpt-4o-mini","temperature":%.2f,"max_tokens":512}},"message":"%s"}',
    LANGUAGES[math.random(#LANGUAGES)], math.random(2, 6), mark, math.random() * 0.9, mark)
  return wrk.format("POST", "/v1/prompts/" .. path .. "/versions", post_headers, body)
end

local function rollback()
  n_rollback = n_rollback + 1
  local path = WRITE_PATHS[math.random(#WRITE_PATHS)]
  local body = string.format('{"environment":"production","reason":"soak %s"}', TAG)
  return wrk.format("POST", "/v1/prompts/" .. path .. "/rollback", post_headers, body)
end

request = function()
  local r = math.random(1000)
  if r <= 950 then
    n_resolve = n_resolve + 1
    return resolves[math.random(#resolves)]
  elseif r <= 990 then
    return event_batch()
  elseif r <= 998 then
    return new_version()
  end
  return rollback()
end

if DELAY_MS > 0 then
  -- a paced run (the CI form): each connection waits on average DELAY_MS before its next request
  delay = function()
    return math.random() * 2 * DELAY_MS
  end
end

done = function(summary, latency, requests)
  local kinds = {0, 0, 0, 0}
  for _, thread in ipairs(threads) do
    kinds[1] = kinds[1] + thread:get("n_resolve")
    kinds[2] = kinds[2] + thread:get("n_event")
    kinds[3] = kinds[3] + thread:get("n_version")
    kinds[4] = kinds[4] + thread:get("n_rollback")
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency.max))
  io.write(string.format("KINDS %d %d %d %d\n", kinds[1], kinds[2], kinds[3], kinds[4]))
  local q = {}
  for i = 1, 1000 do
    q[i] = string.format("%d", latency:percentile((i - 0.5) / 10))
  end
  io.write("QUANTILES " .. table.concat(q, " ") .. "\n")
end
