-- The same request every time: params.method, params.path, params.body.
wrk.method = params.method
wrk.path = params.path
wrk.headers = params.headers
wrk.body = params.body
