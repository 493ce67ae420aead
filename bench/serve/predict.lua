-- wrk script: POSTs the JSON body in the file SLUICE_BENCH_BODY to the URL given to wrk.
local file = assert(io.open(os.getenv("SLUICE_BENCH_BODY"), "r"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = file:read("*a")
file:close()
