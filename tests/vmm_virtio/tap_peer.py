"""Test peer on a tap interface (AF_PACKET): wait for the guest's frame (ethertype
0x88b5, payload starting with the guest marker), print it, answer with a frame
carrying the host marker. Usage: tap_peer.py IFNAME TIMEOUT_S"""
import socket
import sys
import time

ifname, timeout = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
s.settimeout(0.5)
print("ready", flush=True)
deadline = time.time() + timeout
while time.time() < deadline:
    try:
        f = s.recv(65535)
    except socket.timeout:
        continue
    if len(f) >= 14 and f[12:14] == b"\x88\xb5" and b"novakvm-guest-ping" in f:
        src = f[6:12]
        print("got len=%d payload=%s src=%s" % (len(f), f[14:32].decode(), src.hex(":")), flush=True)
        reply = src + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + b"novakvm-host-pong\0"
        reply = reply.ljust(60, b"\0")
        for _ in range(5):
            s.send(reply)
            time.sleep(0.2)
        sys.exit(0)
print("timeout", flush=True)
sys.exit(1)
