-- POST a new contact with an unused email and its own Idempotency-Key.
local counter = 0

request = function()
  counter = counter + 1
  local tag = string.format("%s.%d.%d", params.run_id, thread_index, counter)
  local body = string.format(
    '{"name":"Bench Contact %d","email":"new.%s@bench.example.com",' ..
    '"company":"Acme","tags":["bench"]}', counter, tag)
  local headers = copy_headers({["Idempotency-Key"] = "bench-" .. tag})
  return wrk.format("POST", params.path, headers, body)
end
