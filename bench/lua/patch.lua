-- PATCH contacts with If-Match set to the ETag of the last response.
-- Each thread owns a slice of params.ids and never sends two requests for
-- one contact at a time, so no request is stale unless another client
-- changed the row.
local free = {}
local etags = {}
local counter = 0

function thread_init()
  for i, id in ipairs(params.ids) do
    if (i - 1) % params.threads == thread_index then
      table.insert(free, id)
      etags[id] = params.initial_etag
    end
  end
end

request = function()
  counter = counter + 1
  local body = string.format('{"phone":"+1 555 %04d"}', counter % 10000)
  if #free == 0 then
    -- Every contact of the slice is in flight or lost to an error
    -- response; "*" skips the version check rather than stall.
    local headers = copy_headers({["If-Match"] = "*"})
    return wrk.format("PATCH", params.path .. params.ids[1], headers, body)
  end
  local id = table.remove(free, math.random(#free))
  local headers = copy_headers({["If-Match"] = etags[id]})
  return wrk.format("PATCH", params.path .. id, headers, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    return
  end
  local id = string.match(body, '"id":%s*"([%x%-]+)"')
  if id and etags[id] then
    etags[id] = headers["ETag"] or headers["etag"]
    table.insert(free, id)
  end
end
