#!/usr/bin/env python3
"""Open-loop load on a running `touxiang serve` (loopback, insecure-no-auth): single-item
`POST /v1/classify` at a fixed offered rate for a fixed time; latency is measured from each
request's scheduled send time. Prints status counts, the 429 share and p50/p99 of the 200s.

    python3 eval/bench/open_loop_load.py RATE SECONDS [THREADS]   # e.g. 400 20

The client threads share the machine with the server; on 2 cores they take a large part of it.
Standard library only.
"""
import threading, time, json, http.client, sys, collections, os
rate = float(sys.argv[1]); dur = float(sys.argv[2]); nthreads = int(sys.argv[3]) if len(sys.argv) > 3 else 128
texts = [l.strip() for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'loans1000.txt')) if l.strip()]
lat = []; codes = collections.Counter(); lock = threading.Lock()
start = time.time() + 0.5
total = int(rate * dur)
def worker(k):
    c = http.client.HTTPConnection("127.0.0.1", 18080, timeout=120)
    for i in range(k, total, nthreads):
        sched = start + i / rate
        now = time.time()
        if sched > now: time.sleep(sched - now)
        body = json.dumps({"items": [{"text": texts[i % len(texts)]}]})
        try:
            c.request("POST", "/v1/classify", body, {"content-type": "application/json"})
            r = c.getresponse(); r.read(); st = r.status
        except Exception as e:
            st = "err"; c = http.client.HTTPConnection("127.0.0.1", 18080, timeout=120)
        t = time.time() - sched
        with lock:
            codes[st] += 1
            if st == 200: lat.append(t)
ths = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
[t.start() for t in ths]; [t.join() for t in ths]
lat.sort()
q = lambda p: round(lat[int(p*(len(lat)-1))]*1000, 1) if lat else None
print(json.dumps({"offered_rps": rate, "seconds": dur, "codes": dict(codes), "share_429": round(codes[429]/total, 3), "p50_ms_200": q(0.5), "p99_ms_200": q(0.99)}))
