-- One request shape per run, from environment variables set by the harness:
--   BENCH_METHOD, BENCH_PATHS_FILE (one path a line, used round-robin), BENCH_BODY (may hold
--   {n}, replaced by a per-thread counter so created titles stay unique, and {u}, replaced by
--   counter mod BENCH_USERS so logins spread over many accounts), BENCH_TOKEN.
package.path = package.path .. ";" .. os.getenv("BENCH_WRK_DIR") .. "/?.lua"
local report = require("report")

local method = os.getenv("BENCH_METHOD") or "GET"
-- With BENCH_TOGGLE set, every other request undoes the previous one (favorite, unfavorite),
-- so each request is a real write rather than an idempotent no-op.
local toggle = os.getenv("BENCH_TOGGLE") or ""
local body = os.getenv("BENCH_BODY") or ""
local token = os.getenv("BENCH_TOKEN") or ""
local users = tonumber(os.getenv("BENCH_USERS") or "1")
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS_FILE")) do
  if line ~= "" then
    table.insert(paths, line)
  end
end
-- A toggled path is asked twice in a row (do, undo); any other path once per turn.
local per_path = (toggle ~= "") and 2 or 1

local counter = 0
local thread_id = 0
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function request()
  counter = counter + 1
  local path = paths[(math.floor(counter / per_path) % #paths) + 1]
  local verb = method
  if toggle ~= "" and counter % 2 == 0 then
    verb = toggle
  end
  local headers = { ["Content-Type"] = "application/json" }
  if token ~= "" then
    headers["Authorization"] = "Token " .. token
  end
  local payload = nil
  if body ~= "" then
    local unique = tostring(thread_id) .. "-" .. tostring(counter) .. "-" .. tostring(math.random(1e9))
    payload = string.gsub(string.gsub(body, "{n}", unique), "{u}", tostring(counter % users))
  end
  return wrk.format(verb, path, headers, payload)
end

done = report.done
