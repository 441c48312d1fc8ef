#!/usr/bin/env python3
"""Reliability case 3 (written by the team): hold N slow-header connections open against a local
touxiang, then time a legitimate classify call, then check that the server closed the slow ones
after its header timeout. Loopback only, bounded (N connections, one classify before and after).

    python3 eval/reliability/slow_headers.py N [--port 8080] [--key KEY] [--wait 12]

The client needs N + a few descriptors: run it under `prlimit --nofile=30000:30000` (root) for
N = 20 000. Start the server the same way so it may raise its own limit.
"""
import argparse, http.client, json, resource, socket, time

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("--port", type=int, default=8080)
ap.add_argument("--key")
ap.add_argument("--wait", type=float, default=12.0, help="seconds to wait for the header timeout")
a = ap.parse_args()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < a.n + 64:
    raise SystemExit(f"descriptor limit {hard} < {a.n} + 64: run under prlimit --nofile=...")

socks, t0 = [], time.time()
for i in range(a.n):
    try:
        s = socket.create_connection(("127.0.0.1", a.port), timeout=2)
        s.send(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        socks.append(s)
    except OSError as e:
        print("connection", i, "failed:", e)
        break
print(f"opened {len(socks)} slow-header connections in {time.time() - t0:.1f} s")


def classify():
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
    h = {"content-type": "application/json"}
    if a.key:
        h["authorization"] = "Bearer " + a.key
    t = time.time()
    c.request("POST", "/v1/classify", json.dumps({"items": [{"text": "烧烤店购买冷柜"}]}), h)
    r = c.getresponse()
    r.read()
    return r.status, round((time.time() - t) * 1000, 1)


print("classify while they are held: status %s in %s ms" % classify())
time.sleep(a.wait)
closed = 0
for s in socks:
    try:
        s.settimeout(0.01)
        s.recv(1024)
        closed += 1  # EOF or the server's 408
    except socket.timeout:
        pass
    except OSError:
        closed += 1
print(f"closed by the server after {a.wait:.0f} s: {closed} of {len(socks)}")
print("classify after: status %s in %s ms" % classify())
