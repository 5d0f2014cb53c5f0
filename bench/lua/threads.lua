-- Number each wrk thread, so request bodies and slices differ per thread.
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_index or 0))
  if thread_init then
    thread_init()
  end
end

function copy_headers(extra)
  local result = {}
  for name, value in pairs(params.headers) do
    result[name] = value
  end
  for name, value in pairs(extra or {}) do
    result[name] = value
  end
  return result
end
