-- GET params.path .. id with an id drawn at random from params.ids.
local ids = params.ids

request = function()
  return wrk.format("GET", params.path .. ids[math.random(#ids)], params.headers)
end
