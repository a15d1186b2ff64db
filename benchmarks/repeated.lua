-- wrk script: one request, the same bytes every time (the secondary line).
--
-- The same shape and size as varied.lua's requests, but identical: this is
-- what a plain `wrk URL` measures, and what per-connection caches of the
-- previous request can answer. No headline may rest on it.

function init(args)
  req = "GET " .. wrk.path .. "?q=python-1&page=1&sort=asc HTTP/1.1\r\n" ..
    "Host: " .. wrk.host .. ":" .. wrk.port .. "\r\n" ..
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0 bench/1.1\r\n" ..
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" ..
    "Accept-Language: en-US,en;q=0.5\r\n" ..
    "Accept-Encoding: gzip, deflate\r\n" ..
    "Cookie: session=80f15fc700000002; theme=light; visits=2\r\n" ..
    "Connection: keep-alive\r\n\r\n"
end

function request()
  return req
end
