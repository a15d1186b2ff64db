-- wrk script: send 16 pipelined GET requests per round trip.
init = function(args)
  local depth = 16
  local reqs = {}
  for i = 1, depth do
    reqs[i] = wrk.format("GET", wrk.path)
  end
  req = table.concat(reqs)
end

request = function()
  return req
end
