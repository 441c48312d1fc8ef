-- wrk script: single-item /v1/classify at a paced rate with exponential (Poisson-like) gaps,
-- texts drawn from eval/bench/loans1000.txt. Written by the team.
--   wrk -t2 -c4 -d60s --latency -s eval/bench/classify_paced.lua http://127.0.0.1:8091 -- 50 4
-- The trailing arguments are the total target rate (requests/s) and the number of connections
-- (the -c value); each
-- connection waits an exponential gap with mean connections/rate seconds after each answer
-- (closed loop, so queueing at the server shows as latency, not as a lower rate, until the
-- server nears saturation). Set KEY in the environment when authentication is on.
local texts = {}
local rate = 50
local conns = 4
local key = os.getenv("KEY")

function init(args)
  rate = tonumber(args[1] or "50")
  conns = tonumber(args[2] or "4")
  for line in io.lines("eval/bench/loans1000.txt") do
    if #line > 0 then texts[#texts + 1] = line end
  end
end

function delay()
  local mean_ms = 1000 * conns / rate
  return math.floor(-math.log(1 - math.random()) * mean_ms)
end

function request()
  local t = texts[math.random(#texts)]
  local body = '{"items":[{"text":' .. string.format("%q", t) .. '}],"neighbors":5}'
  local headers = { ["Content-Type"] = "application/json" }
  if key then headers["Authorization"] = "Bearer " .. key end
  return wrk.format("POST", "/v1/classify", headers, body)
end
