-- Print the run's figures as one JSON line for the harness to parse.
-- wrk counts a response with status 400 or above in errors.status.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d," ..
    "\"p99_us\":%d,\"max_us\":%d,\"non2xx\":%d,\"socket_errors\":%d," ..
    "\"timeouts\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e.status,
    e.connect + e.read + e.write, e.timeout))
end
