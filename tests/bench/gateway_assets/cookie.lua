-- perf-anchors §4.3: one random sticky cookie per request, same seed for every proxy
math.randomseed(12345)
request = function()
  return wrk.format("GET", "/", {["Cookie"] = "sid=" .. math.random(1, 100000)})
end
