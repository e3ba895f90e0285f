-- The same request every time: POST <path> with a body read from a file and the given
-- headers. Arguments (after --): <path> <body file> then header name/value pairs.
function init(args)
  local f = assert(io.open(args[2], "rb"))
  local body = f:read("*a")
  f:close()
  local headers = {}
  local k = 3
  while args[k] do
    headers[args[k]] = args[k + 1]
    k = k + 2
  end
  req = wrk.format("POST", args[1], headers, body)
end

function request()
  return req
end
