"""The request path's core: one request's attempts (`forward`), its response (`exchange`),
the stream relay (`relay`) around the sans-IO stream core (`stream`), and the pure request
rewrite (`rewrite`)."""
