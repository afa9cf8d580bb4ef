#!/usr/bin/env python3
"""A stand-in for Neutron until the networking issue brings real neutron-server.

Nova 34 calls Neutron even for servers booted with ``--nic none``: nova-api on
every server show (``GET /v2.0/ports?fields=security_groups&...``), the compute
on delete (``GET /v2.0/ports?device_id=...``, ``GET /v2.0/networks?...``).
This server answers exactly those reads with empty lists, which is what a
Neutron with no ports and no networks answers. It stores nothing, accepts no
writes (they get 501 Not Implemented, so a nova path that needs real
networking fails loudly instead of silently), and does not check tokens.

Every request is appended as one JSON line to the file named by
``--log`` so one can see what nova asked.

Usage: neutron_standin.py --host 127.0.0.1 --port 9696 --log FILE
"""

import argparse
import datetime
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Read-only collections a Neutron without any networking resources lists as
# empty. Nova asks for ports and networks; the rest are asked by
# `openstack` CLI commands (and nova's extension cache) and cost nothing.
EMPTY_COLLECTIONS = {
    "ports",
    "networks",
    "subnets",
    "security-groups",
    "floatingips",
    "extensions",
}

MAX_BODY = 1 << 20

BAD_REQUEST = {
    "NeutronError": {
        "type": "BadRequest",
        "message": "bad Content-Length",
        "detail": "",
    }
}

VERSIONS = {
    "versions": [
        {
            "id": "v2.0",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": "http://127.0.0.1:9696/v2.0/"}],
        }
    ]
}


def route(method, raw_path):
    """Return (status, body) for a request; pure, so it is easy to test."""
    parsed = urllib.parse.urlsplit(raw_path)
    path = parsed.path.rstrip("/")
    if method not in ("GET", "HEAD"):
        return 501, {
            "NeutronError": {
                "type": "NotImplemented",
                "message": "the minicloud Neutron stand-in serves reads only",
                "detail": "",
            }
        }
    if path in ("", "/"):
        return 200, VERSIONS
    if path == "/v2.0":
        return 200, {"resources": []}
    parts = path.split("/")
    # ['', 'v2.0', '<collection>'] with an optional '.json' suffix
    if len(parts) == 3 and parts[1] == "v2.0":
        name = parts[2]
        if name.endswith(".json"):
            name = name[: -len(".json")]
        if name in EMPTY_COLLECTIONS:
            key = name.replace("-", "_")
            return 200, {key: []}
    return 404, {
        "NeutronError": {
            "type": "HTTPNotFound",
            "message": "The resource could not be found.",
            "detail": "",
        }
    }


class Handler(BaseHTTPRequestHandler):
    """HTTP handler delegating to route() and logging each call."""

    server_version = "minicloud-neutron-standin/1"
    protocol_version = "HTTP/1.1"
    log_file = None

    def _serve(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            status, body, body_in = 400, BAD_REQUEST, b""
        else:
            body_in = self.rfile.read(length) if length > 0 else b""
            status, body = route(self.command, self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(
            "X-Openstack-Request-Id",
            self.headers.get("X-OpenStack-Request-ID", "req-standin"),
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        if self.log_file:
            rec = {
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "method": self.command,
                "path": self.path,
                "request_body": body_in.decode("utf-8", "replace") or None,
                "status": status,
                "response_body": body,
            }
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, fmt, *args):  # quieter than the default
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9696)
    ap.add_argument("--log", default=None, help="append one JSON line per call")
    args = ap.parse_args(argv)
    Handler.log_file = args.log
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.serve_forever()


if __name__ == "__main__":
    main()
