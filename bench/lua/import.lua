-- POST params.rows new contacts to the import route in one request.
local counter = 0

request = function()
  counter = counter + 1
  local tag = string.format("%s.%d.%d", params.run_id, thread_index, counter)
  local rows = {}
  for i = 1, params.rows do
    rows[i] = string.format(
      '{"name":"Imported %d","email":"imp.%s.%d@bench.example.com",' ..
      '"company":"Initech"}', i, tag, i)
  end
  local body = '{"contacts":[' .. table.concat(rows, ",") .. ']}'
  local headers = copy_headers({["Idempotency-Key"] = "bench-import-" .. tag})
  return wrk.format("POST", params.path, headers, body)
end
