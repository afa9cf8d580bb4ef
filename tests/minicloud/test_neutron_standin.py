"""Tests of the Neutron stand-in, against the real server on a free port.

Run: python3 -m pytest tests/minicloud/test_neutron_standin.py
  or python3 -m unittest discover -s tests/minicloud -p 'test_*.py'
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "..", "..", "devstack", "minicloud.d", "neutron_standin.py")
WIRE = os.environ.get("NOVA_WIRE", "/work/shared/nova-wire")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.log = os.path.join(os.environ.get("TMPDIR", "/tmp"), "standin-test-%d.jsonl" % os.getpid())
        cls.proc = subprocess.Popen(
            [sys.executable, STANDIN, "--host", "127.0.0.1", "--port", str(cls.port), "--log", cls.log],
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("stand-in did not start")

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        if os.path.exists(cls.log):
            os.unlink(cls.log)

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data else None

    def test_answers_what_nova_asked_in_the_capture(self):
        path = os.path.join(WIRE, "neutron-http.jsonl")
        if not os.path.exists(path):
            self.skipTest("no capture at %s" % path)
        with open(path) as f:
            calls = [json.loads(line) for line in f if line.strip()]
        self.assertTrue(calls)
        for call in calls:
            status, body = self.request(call["method"], call["path"],
                                        headers={"X-Auth-Token": "x"})
            self.assertEqual((status, body), (call["status"], call["response_body"]), call["path"])

    def test_empty_collections(self):
        self.assertEqual(self.request("GET", "/v2.0/ports?device_id=abc"), (200, {"ports": []}))
        self.assertEqual(self.request("GET", "/v2.0/networks.json?shared=True"), (200, {"networks": []}))
        self.assertEqual(self.request("GET", "/v2.0/security-groups"), (200, {"security_groups": []}))
        status, body = self.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(body["versions"][0]["id"], "v2.0")

    def test_writes_are_refused(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, body = self.request(method, "/v2.0/ports", body=b'{"port": {}}',
                                        headers={"Content-Type": "application/json"})
            self.assertEqual(status, 501, method)
            self.assertEqual(body["NeutronError"]["type"], "NotImplemented")

    def test_garbage_gets_clear_errors(self):
        for path in ("/v2.0/ports/123", "/v3/ports", "/v2.0/../../etc/passwd",
                     "/v2.0/%00%ff", "/v2.0//ports", "/v2.0/ports/x/y/z", "/" + "a" * 5000):
            status, body = self.request("GET", path)
            self.assertEqual(status, 404, path)
            self.assertEqual(body["NeutronError"]["type"], "HTTPNotFound")
        status, body = self.request("POST", "/v2.0/ports", headers={"Content-Length": "abc"})
        self.assertEqual(status, 400)
        status, body = self.request("POST", "/v2.0/ports", headers={"Content-Length": "-5"})
        self.assertEqual(status, 400)
        # raw junk on the socket: the server answers 400 or closes, and stays up
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"\x00\x01garbage\r\n\r\n")
            s.recv(4096)
        self.assertEqual(self.request("GET", "/v2.0/ports")[0], 200)

    def test_every_call_is_logged(self):
        self.request("GET", "/v2.0/ports?device_id=logged-one")
        # The stand-in logs after it has answered: give it a moment.
        deadline = time.monotonic() + 5
        while True:
            with open(self.log) as f:
                paths = [json.loads(line)["path"] for line in f]
            if "/v2.0/ports?device_id=logged-one" in paths or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertIn("/v2.0/ports?device_id=logged-one", paths)


if __name__ == "__main__":
    unittest.main()
