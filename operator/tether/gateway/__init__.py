"""tether.gateway — the sticky HTTP/1.1 gateway (``tether gateway``).

asyncio ``Protocol`` + httptools (llhttp) + uvloop, one process per core. It never imports
kopf, the operator's handlers, ``tether.k8s`` or ``tether.reconcile``; it reads the table
documents (``tether.models.table``) and chooses hosts with ``tether.hashing``.

Request path::

    client ─► ClientProtocol (proxy.py): parse, limits, hop-by-hop, XFF
           ─► Router.lookup(Host) (routes.py) ─► Route.pick: hash key → xxh64 → table
           ─► idle keep-alive connection from the endpoint's pool, or connect (upstream.py)
           ─► response head relayed minus hop-by-hop lines (+ Set-Cookie when generated)

Speed: heads in a strict, common subset of HTTP/1.1 are scanned natively and forwarded as
received with minimal splicing (``wire``); the common exchange (such a head, a Content-Length
or no body, a pooled upstream connection, a Content-Length response) runs end to end in the
native lane (``wire/lane.c``, installed by ``native``), including the pick for round robin
and cookie/header/source-IP keys, metrics and access-log lines. Everything else takes llhttp
and the Python methods, which are complete on their own and the reference the lane is a
transcription of (``TETHER_GATEWAY_NATIVE=0`` runs them alone; the tests run both).

Behaviour users see:
- Routing (DESIGN §3.4): Host ``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.<domain>``
  with optional ``:port``; see ``routes`` for the exact, deterministic rules and the default
  route (``--default-service``, else the only published Service).
- Policies: ``consistentHash`` uses the document's Maglev / ring-hash table (ketama via
  uhashring) exactly as Envoy: cookie (generated with Envoy's value and ``Set-Cookie`` when
  missing/empty and ``ttlSeconds`` is set, ``0`` = session cookie), header, source IP (the
  right-most untrusted ``X-Forwarded-For`` hop when the peer is in ``--trusted-proxies``),
  query parameter; no key or no value → a random 64-bit hash (Envoy's random pick);
  ``hashBalanceFactor > 0`` → Envoy's bounded load over the gateway's in-flight counts.
  ``simple``: ROUND_ROBIN (default; also UNSPECIFIED/PASSTHROUGH and unknown values) is
  nginx-style smooth weighted round robin over ready endpoints; LEAST_REQUEST/LEAST_CONN pick
  the less busy of two random ready endpoints (Envoy's P2C); RANDOM is uniform.
- Retries: only when connecting fails (nothing was sent): the next attempt is Envoy's
  ``choose(h, attempt + 1)`` (the next round-robin endpoint for simple policies), skipping
  endpoints already tried or recently refused (``--eject-seconds``), at most
  ``--connect-attempts`` endpoints. A pooled connection the upstream closed before answering
  a body-less request is retried once on a fresh connection.
- Errors answered by the gateway (text/plain, the reason in the body): 400 malformed request
  (framing, Host, target, HTTP/1.0 with Transfer-Encoding), 404 no route for the Host, 405
  CONNECT, 408 request head or body timeout, 413 body limit (a declared length at once), 431
  head limit, 502 upstream connect failed / bad upstream response, 503 no ready endpoint,
  tables not loaded yet or too many pipelined requests, 504 upstream (connect) timeout, 505
  HTTP version. Limits, per-direction timers and the pipelining bound: ``flow``.
- Message integrity: Connection tokens never remove the fields the message is framed or
  routed by (``http.CONNECTION_KEEPS``); trailers never become headers; no body is relayed
  after a response that has none.
- Upgrade (WebSocket): routed and pinned like any request, then a byte tunnel both ways with
  backpressure and per-side idle timers (``upgrade``, ``tunnel``); other Upgrades (h2c) are
  dropped and the request proxied as a plain one.
- TLS: a second listener with certificates from ``kubernetes.io/tls`` Secrets or a directory,
  chosen by SNI and hot-reloaded (``tls``); ``redirect`` sends plain HTTP to https.
- Not supported: CONNECT (405), HTTP/2 (ALPN offers http/1.1 only), request trailers (dropped).
- Access log: one JSON line per request (``accesslog``); metrics on the admin port
  (``metrics``); ``/healthz`` and ``/readyz`` (``admin``).
"""
