#!/usr/bin/env python3
"""A creditphone webhook receiver in the Python standard library (see docs/WEBHOOKS.md).

It verifies every delivery's CreditPhone-Signature (HMAC-SHA256 over "<t>.<raw body>" with the
webhook secret, 5 minutes of tolerance on t, constant-time comparison), answers 2xx quickly, and
processes each event id once: creditphone delivers at least once, so a retry of an event already
processed is acknowledged and skipped.

    CREDITPHONE_WEBHOOK_SECRET=whsec_... python3 webhook_receiver.py --port 8000
    python3 webhook_receiver.py --self-test

Each event processed (or skipped as a duplicate) is printed as one JSON line on stdout. A real
receiver keeps the processed ids in its database, in the same transaction as the processing,
with a unique constraint on the id; this example keeps them in memory.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

TOLERANCE_SECONDS = 300


def verify_signature(payload: bytes, header: str, secret: str, tolerance: int = TOLERANCE_SECONDS, now: float = None) -> bool:
    """True when `header` (t=<unix seconds>,v1=<hex>[,v1=...]) signs `payload` with `secret`, recently."""
    timestamp, signatures = None, []
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return False  # too old (or from the future): a replayed capture
    expected = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + payload, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, secret):
        super().__init__(address, Handler)
        self.secret = secret
        self.seen = set()
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)  # the raw bytes: verify before parsing
        if not verify_signature(payload, self.headers.get("CreditPhone-Signature", ""), self.server.secret):
            return self.answer(400, {"error": "bad signature"})
        event = json.loads(payload)
        if event.get("id") != self.headers.get("CreditPhone-Event-Id"):
            return self.answer(400, {"error": "event id mismatch"})
        with self.server.lock:
            duplicate = event["id"] in self.server.seen
            if not duplicate:
                self.server.seen.add(event["id"])  # process the event here, then record its id
        print(json.dumps({"event": event["id"], "type": event["type"], "recipient": event["recipient"], "duplicate": duplicate}), flush=True)
        self.answer(200, {"received": event["id"]})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # stdout carries the events only


def self_test():
    secret, body, t = "whsec_test", b'{"a":1}', 1700000000
    good = "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
    assert verify_signature(body, good, secret, now=t + 10)
    assert verify_signature(body, good, secret, now=t - 299)
    assert not verify_signature(body, good, secret, now=t + 301), "outside the tolerance"
    assert not verify_signature(b'{"a":2}', good, secret, now=t), "another body"
    assert not verify_signature(body, good, "whsec_other", now=t), "another secret"
    assert not verify_signature(body, "t=1700000000", secret, now=t), "no v1"
    assert not verify_signature(body, "", secret, now=t)
    rotated = good.replace("v1=", "v1=00,v1=")
    assert verify_signature(body, rotated, secret, now=t), "any v1 may match"
    print("self-test ok")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    secret = os.environ.get("CREDITPHONE_WEBHOOK_SECRET")
    if not secret:
        sys.exit("set CREDITPHONE_WEBHOOK_SECRET to the webhook_secret creditphone gave you")
    server = Receiver((args.host, args.port), secret)
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
