#!/usr/bin/env python3
"""Latency of one-item `POST /v1/classify` calls against a running `touxiang serve`.

Sends the lines of TEXTS one request at a time (a warm-up pass of --warmup requests first, not
counted) over one keep-alive connection, and prints one JSON object with p50/p90/p99 in ms.
Standard library only.

    python3 eval/bench/http_latency.py --url http://127.0.0.1:8080 --texts FILE \
        [--key API_KEY] [--n 300] [--taxonomy gbt4754-2017] [--neighbors 5]
"""
import argparse, http.client, json, time, urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--texts", required=True)
    ap.add_argument("--key")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--taxonomy", default="gbt4754-2017")
    ap.add_argument("--neighbors", type=int, default=5)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80)
    texts = [l.strip() for l in open(a.texts, encoding="utf-8") if l.strip()]
    headers = {"content-type": "application/json"}
    if a.key:
        headers["authorization"] = f"Bearer {a.key}"
    lat, errors = [], 0
    for i in range(a.warmup + a.n):
        body = json.dumps({"items": [{"text": texts[i % len(texts)]}], "taxonomy": a.taxonomy,
                           "neighbors": a.neighbors})
        t = time.perf_counter()
        conn.request("POST", "/v1/classify", body, headers)
        r = conn.getresponse()
        r.read()
        ms = (time.perf_counter() - t) * 1e3
        if r.status != 200:
            errors += 1
        if i >= a.warmup:
            lat.append(ms)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))]
    print(json.dumps({"requests": len(lat), "non_200": errors, "p50_ms": q(0.5), "p90_ms": q(0.9),
                      "p99_ms": q(0.99), "mean_ms": sum(lat) / len(lat)}))


if __name__ == "__main__":
    main()
