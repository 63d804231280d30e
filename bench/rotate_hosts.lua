-- wrk script: send each request with the Host of the next tenant, so 64 connections spread
-- evenly over all tenants. Arguments after `--` on the wrk command line:
--   <count> [prefix]   rotate over <prefix>00 .. <prefix><count-1> .localhost (default: 50 b)
--   fixed <host>       always the same Host (the baseline: same script, same per-request cost)
-- At the end it prints one line `WRK_JSON {...}` that bench/harness.py (run_wrk) parses.

local requests = {}
local n = 0
local i = 0
local threads = 0

function setup(thread)
   -- Each thread starts at a different tenant.
   thread:set("offset", threads * 17)
   threads = threads + 1
end

function init(args)
   local hosts = {}
   if args[1] == "fixed" then
      hosts[1] = args[2]
   else
      local count = tonumber(args[1] or "50")
      local prefix = args[2] or "b"
      for k = 0, count - 1 do
         hosts[#hosts + 1] = string.format("%s%02d.localhost", prefix, k)
      end
   end
   for k, host in ipairs(hosts) do
      requests[k] = wrk.format("GET", wrk.path, { ["Host"] = host })
   end
   n = #requests
   i = (offset or 0) % n
end

function request()
   i = i % n + 1
   return requests[i]
end

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max))
end
