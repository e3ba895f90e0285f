-- Round-robin over a file of requests, one per line: "<path>\t<body>" (the body is one line of
-- JSON). Thread t of T sends requests t, t+T, t+2T, ... so together the threads walk the file
-- in order, then start again (webhooks: first deliveries, then duplicates).
-- Arguments (after --): <requests file> <threads> <header name> <header value>
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local threads = tonumber(args[2])
  wrk.headers["Content-Type"] = "application/json"
  if args[3] and args[3] ~= "" then
    wrk.headers[args[3]] = args[4]
  end
  reqs = {}
  for line in io.lines(args[1]) do
    local path, body = line:match("^(%S+)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", path, nil, body)
  end
  step = threads
  i = tid - 1
end

function request()
  local r = reqs[(i % #reqs) + 1]
  i = i + step
  return r
end
