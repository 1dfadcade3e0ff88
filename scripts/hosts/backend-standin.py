#!/usr/bin/env python3
"""Stand-in backend of one HAProxy health check (real-host tier, docs/integration.md "Real hosts").

  backend-standin.py CONFIG_JSON

CONFIG_JSON (written by tests/hosts/tier.ts from the rendered haproxy.cfg, root-only; the fields of
tests/hosts/backends.ts BackendStandin):
  {"listener": "postgres-write", "address": "10.0.0.121", "port": 8008,
   "tls": {"certificate": FILE, "key": FILE} | null,
   "method": "OPTIONS", "uri": "/primary", "authorization": null | "Basic ...", "log": FILE}

Answers 200 to exactly the listener's check request (method, URI with its query, and the
Authorization header when one is given), 401 to that request with a wrong or missing
Authorization, 503 to any other (as Patroni answers for a role it does not hold). One line per
request goes to "log": `<status> <method> <uri>` (never the header). It proves HAProxy's checks
pass against a server that answers what they ask; it does NOT prove Patroni's or RabbitMQ's own
answers.
"""
import http.server
import json
import ssl
import sys

with open(sys.argv[1], encoding="utf8") as config_file:
    CONFIG = json.load(config_file)


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self) -> None:
        status = 503
        if self.command == CONFIG["method"] and self.path == CONFIG["uri"]:
            expected = CONFIG["authorization"]
            status = 200 if expected is None or self.headers.get("Authorization") == expected else 401
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with open(CONFIG["log"], "a", encoding="utf8") as log:
            log.write(f"{status} {self.command} {self.path}\n")

    do_GET = do_OPTIONS = do_HEAD = answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        pass


server = http.server.ThreadingHTTPServer((CONFIG["address"], CONFIG["port"]), Handler)
if CONFIG.get("tls"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CONFIG["tls"]["certificate"], CONFIG["tls"]["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
