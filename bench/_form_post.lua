-- wrk script: POST a form with a unique email address on every request.
--
-- Arguments (after wrk's "--"):
--   1  email prefix, unique to the run, e.g. "bench-1712345678-signup"
--   2  the rest of the form body, already URL-encoded, without the email field
--   3  Cookie header value ("" for none)
--
-- Each thread numbers its own requests, so the address "<prefix>-<thread>-<n>@example.com"
-- is never repeated in a run. done() prints one line, "BENCH_RESULT {json}", read by
-- bench/_support.py: latencies in microseconds, "sent" counts requests written (including
-- any still in flight when wrk stopped), "non_2xx" counts error answers (outside 200-399:
-- signup answers 303 to its check-your-email page, Post/Redirect/Get).

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   prefix = args[1]
   rest = args[2]
   sent = 0
   non_2xx = 0
   local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
   if args[3] and args[3] ~= "" then
      headers["Cookie"] = args[3]
   end
   wrk.headers = headers
   wrk.method = "POST"
end

function request()
   sent = sent + 1
   local body = "email=" .. prefix .. "-" .. id .. "-" .. sent .. "%40example.com&" .. rest
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status < 200 or status > 399 then
      non_2xx = non_2xx + 1
   end
end

function done(summary, latency, requests)
   local total_sent, total_non_2xx = 0, 0
   for _, thread in ipairs(threads) do
      total_sent = total_sent + thread:get("sent")
      total_non_2xx = total_non_2xx + thread:get("non_2xx")
   end
   -- Before the run, wrk calls request() once on the first thread to see how many requests
   -- it returns (script_verify_request); that one is never sent.
   total_sent = total_sent - 1
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "sent": %d, "non_2xx": %d, "connect": %d, "read": %d, '
         .. '"write": %d, "timeout": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
         .. '"mean_us": %d, "max_us": %d}\n',
      summary.requests, total_sent, total_non_2xx, e.connect, e.read, e.write, e.timeout,
      summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
      latency.max
   ))
end
