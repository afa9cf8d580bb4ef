#!/usr/bin/env python3
"""Real oslo.messaging 18.3.1 peers for novakvm's RPC tests and benches.

  oslo_peer.py server --url URL --topic T --server S
      An oslo RPC server (exchange `nova`) with a test endpoint (version 1.3):
      echo(**kw) -> kw, fail(msg) raises ValueError(msg), noop() -> None,
      record(**kw): prints {"record": kw, "ctxt": ctxt} on stdout.
      Prints "READY" once listening; stops on stdin EOF.

  oslo_peer.py client --url URL   (ops as a JSON list on stdin)
      Runs each op and prints one JSON line per op:
      {"op":"call","topic":..,"server":..,"method":..,"args":{},"version":"1.0",
       "namespace":null,"timeout":10,"call_monitor_timeout":null}                 -> {"ok": result} | {"error": {...}}
      {"op":"cast", same fields, "fanout": false}     -> {"ok": null}
      {"op":"raw","routing_key":..,"body":"<text>","reply":true,"timeout":5}
          publishes raw bytes with pika to exchange nova; with reply, first
          declares its own reply queue, and returns the raw reply body.
"""
import argparse
import json
import sys
import threading
import time
import uuid

import oslo_messaging
from oslo_config import cfg


def make_transport(url):
    conf = cfg.CONF
    conf([], project="novakvm-peer")
    oslo_messaging.set_transport_defaults(control_exchange="nova")
    return conf, oslo_messaging.get_rpc_transport(
        conf, url=url, allowed_remote_exmods=["oslo_messaging.rpc.dispatcher"])


class TestEndpoint:
    target = oslo_messaging.Target(version="1.3")

    def echo(self, ctxt, **kwargs):
        return kwargs

    def noop(self, ctxt):
        return None

    def fail(self, ctxt, msg):
        raise ValueError(msg)

    def record(self, ctxt, **kwargs):
        print(json.dumps({"record": kwargs, "ctxt": ctxt}), flush=True)


def run_server(args):
    conf, transport = make_transport(args.url)
    target = oslo_messaging.Target(topic=args.topic, server=args.server)
    server = oslo_messaging.get_rpc_server(
        transport, target, [TestEndpoint()], executor="threading")
    server.start()
    print("READY", flush=True)
    sys.stdin.read()
    server.stop()
    server.wait()


def error_of(exc):
    out = {"type": type(exc).__name__, "module": type(exc).__module__,
           "str": str(exc), "mro": [c.__name__ for c in type(exc).__mro__]}
    if isinstance(exc, oslo_messaging.RemoteError):
        out["exc_type"] = exc.exc_type
        out["value"] = exc.value
    return out


def raw_publish(url, op):
    import pika
    params = pika.URLParameters(url.replace("rabbit://", "amqp://", 1).rstrip("/") + "/%2F")
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    body = op["body"]
    reply_q = None
    if op.get("reply"):
        reply_q = op.get("reply_q") or "reply_" + uuid.uuid4().hex
        ch.queue_declare(reply_q, arguments={"x-expires": 60000})
        body = body.replace("@REPLY_Q@", reply_q)
    ch.basic_publish(
        exchange=op.get("exchange", "nova"), routing_key=op["routing_key"],
        body=body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body,
        properties=pika.BasicProperties(content_type="application/json",
                                        content_encoding="utf-8", delivery_mode=2))
    result = None
    if reply_q:
        deadline = time.time() + op.get("timeout", 5)
        while time.time() < deadline:
            method, props, rbody = ch.basic_get(reply_q, auto_ack=True)
            if method:
                result = rbody.decode()
                break
            time.sleep(0.05)
    conn.close()
    return result


def run_client(args):
    conf, transport = make_transport(args.url)
    ops = json.load(sys.stdin)
    ctxt = {"user_id": "u1", "project_id": "p1", "request_id": "req-" + str(uuid.uuid4()),
            "roles": ["admin"], "is_admin": True, "read_deleted": "no",
            "user_identity": "u1 p1 - - -", "service_catalog": [], "timestamp":
            "2026-11-28T22:35:07.521768", "novakvm_extra": {"k": [1, 2]}}
    for op in ops:
        try:
            if op["op"] == "raw":
                res = {"ok": raw_publish(args.url, op)}
            else:
                target = oslo_messaging.Target(
                    topic=op["topic"], server=op.get("server"),
                    version=op.get("version", "1.0"), namespace=op.get("namespace"),
                    fanout=op.get("fanout", False))
                client = oslo_messaging.get_rpc_client(
                    transport, target, timeout=op.get("timeout", 10),
                    call_monitor_timeout=op.get("call_monitor_timeout"))
                if op["op"] == "call":
                    res = {"ok": client.call(ctxt, op["method"], **op.get("args", {}))}
                else:
                    client.cast(ctxt, op["method"], **op.get("args", {}))
                    res = {"ok": None}
        except Exception as exc:  # report every failure to the test
            res = {"error": error_of(exc)}
        print(json.dumps(res), flush=True)
    transport.cleanup()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("--url", required=True)
    p.add_argument("--topic")
    p.add_argument("--server")
    args = p.parse_args()
    if args.mode == "server":
        run_server(args)
    else:
        run_client(args)


if __name__ == "__main__":
    main()
