-- wrk script: every request differs, as real clients' do.
--
-- Each request has its own query string, cookie and user agent, built from
-- a per-thread counter (threads get distinct ids in setup), so no two
-- requests of a run are byte for byte the same and no server-side cache of
-- "the previous request" can answer them. About 400 bytes per request, like
-- a browser's GET. The path comes from the URL given to wrk.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local words = {"python", "squall", "tornado", "asyncio", "benchmark", "weather",
               "recipes", "laptop", "football", "music", "garden", "travel"}
local browsers = {
  "Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.%d.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.%d Safari/605.1.%d",
}

local n = 0
local base, sep, host

function init(args)
  tid = tonumber(tid) or 1
  base = wrk.path
  sep = string.find(base, "?", 1, true) and "&" or "?"
  host = wrk.host .. ":" .. wrk.port
end

function request()
  n = n + 1
  local k = n * 7919 + tid * 104729
  local word = words[k % #words + 1]
  local agent = string.format(browsers[k % #browsers + 1], 100 + k % 37, k % 9000)
  return string.format(
    "GET %s%sq=%s-%d&page=%d&sort=%s HTTP/1.1\r\n" ..
    "Host: %s\r\n" ..
    "User-Agent: %s bench/%d.%d\r\n" ..
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" ..
    "Accept-Language: en-US,en;q=0.5\r\n" ..
    "Accept-Encoding: gzip, deflate\r\n" ..
    "Cookie: session=%08x%08x; theme=%s; visits=%d\r\n" ..
    "Connection: keep-alive\r\n\r\n",
    base, sep, word, n, n % 50 + 1, (n % 2 == 0) and "asc" or "desc",
    host,
    agent, tid, n,
    (k * 2654435761) % 4294967296, n, (n % 3 == 0) and "dark" or "light", n % 1000)
end
