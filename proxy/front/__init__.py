"""The front doors: what clients call. Each reads the request, decides the route, and hands
the call to `proxy.core`; none of them writes response bytes itself."""
