-- wrk script: every request names a model that does not exist, alternating between the
-- two protocols, as a client probing for names (or an attacker growing label sets) would.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local oip = '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}'
local tfs = '{"instances": [1]}'
local n = 0
request = function()
    n = n + 1
    local name = "ghost-" .. math.random(1, 1000000000) .. "-" .. n
    if n % 2 == 0 then
        return wrk.format(nil, "/v2/models/" .. name .. "/infer", nil, oip)
    end
    return wrk.format(nil, "/v1/models/" .. name .. "/versions/" .. n .. ":predict", nil, tfs)
end
