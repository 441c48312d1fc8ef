#!/usr/bin/env python3
"""Peak server memory while a large malformed loan file is uploaded (issue 13, item 1).

Writes a CSV with the canonical header and ROWS malformed rows (`x,y`: two fields where the
header has eleven; 5 200 000 rows = 20.8 MB), uploads it to `POST /v1/portfolios/{name}/loans`
(raw text/csv body and/or a multipart `file` part, streamed from disk), and prints, per upload,
the status, the response size, the listed/total rejected rows, the size of the downloadable
report, and the server's RSS before, after and at peak (VmHWM from /proc/PID/status, reset
before each upload through /proc/PID/clear_refs; a 20 ms VmRSS sampler as a cross-check).
Before the first upload it waits for the server's RSS to settle (start-up loading runs in the
background after /healthz).

    # start a server on a scratch data dir and measure (stops it at the end):
    python3 eval/bench/upload_rss.py --serve target/release/touxiang
    # or against a running server (same machine, for /proc):
    python3 eval/bench/upload_rss.py --pid PID --url http://127.0.0.1:8080 --key KEY

Options: --rows N (default 5200000), --mode raw|multipart|both (default both). Standard library
only.
"""
import argparse, http.client, json, os, shutil, subprocess, sys, tempfile, threading, time
import urllib.parse

HEADER = ("loan_id,purpose_text,amount,balance,overdue_days,region_code,customer_type,product,"
          "issue_date,as_of_date,industry_code\n")


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def mb(n):
    return round(n / 2**20, 1)


def settle(pid, quiet_s=5.0, max_s=180.0):
    """Wait until the server's RSS has not moved by more than 1 MB for `quiet_s` seconds:
    start-up loads (model, taxonomies, indexes) run in the background after /healthz answers
    and would otherwise count as the upload's."""
    t0 = last_change = time.time()
    last = status(pid)["VmRSS"]
    while time.time() - t0 < max_s:
        time.sleep(0.5)
        cur = status(pid)["VmRSS"]
        if abs(cur - last) > 2**20:
            last, last_change = cur, time.time()
        elif time.time() - last_change >= quiet_s:
            return


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write(HEADER)
        block = "x,y\n" * 100_000
        for _ in range(rows // 100_000):
            f.write(block)
        f.write("x,y\n" * (rows % 100_000))


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, status(self.pid)["VmRSS"])
            except Exception:
                pass
            time.sleep(0.02)


def request(url, method, path, headers, body=None, length=None):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=3600, blocksize=1 << 16)
    if length is not None:
        headers = dict(headers, **{"Content-Length": str(length)})
    c.request(method, path, body=body, headers=headers)
    return c, c.getresponse()


class Multipart:
    """A multipart body read from a file without loading it (a file-like object for http.client)."""

    def __init__(self, path, boundary="touxiangBOUNDARY"):
        self.pre = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"bad.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()
        self.post = f"\r\n--{boundary}--\r\n".encode()
        self.f = open(path, "rb")
        self.len = len(self.pre) + os.path.getsize(path) + len(self.post)
        self.stage = 0
        self.content_type = f"multipart/form-data; boundary={boundary}"

    def read(self, n=-1):
        if self.stage == 0:
            self.stage = 1
            return self.pre
        if self.stage == 1:
            b = self.f.read(n if n and n > 0 else 1 << 16)
            if b:
                return b
            self.stage = 2
            return self.post
        return b""


def upload(args, pid, csv_path, mode, name):
    auth = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    before = status(pid)
    sampler = Sampler(pid)
    sampler.start()
    t = time.time()
    if mode == "raw":
        body = open(csv_path, "rb")
        c, r = request(args.url, "POST", f"/v1/portfolios/{name}/loans",
                       dict(auth, **{"Content-Type": "text/csv"}), body,
                       os.path.getsize(csv_path))
    else:
        body = Multipart(csv_path)
        c, r = request(args.url, "POST", f"/v1/portfolios/{name}/loans",
                       dict(auth, **{"Content-Type": body.content_type}), body, body.len)
    resp = r.read()
    secs = time.time() - t
    c.close()
    time.sleep(0.3)
    sampler.stop = True
    sampler.join()
    after = status(pid)
    out = {"mode": mode, "status": r.status, "seconds": round(secs, 1),
           "response_bytes": len(resp)}
    try:
        v = json.loads(resp)
        out.update({"rejected_listed": len(v.get("rejected", [])),
                    "rejected_total": v.get("rejected_total"),
                    "rejected_truncated": v.get("rejected_truncated"),
                    "report_url": v.get("report_url")})
        if v.get("report_url"):
            c, r = request(args.url, "GET", v["report_url"], auth)
            n = lines = 0
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                n += len(b)
                lines += b.count(b"\n")
            c.close()
            out.update({"report_status": r.status, "report_bytes": n,
                        "report_rows": lines - 1,
                        "rss_after_report_download_mb": mb(status(pid)["VmRSS"])})
    except ValueError:
        out["body_head"] = resp[:200].decode(errors="replace")
    out.update({"rss_before_mb": mb(before["VmRSS"]), "rss_after_mb": mb(after["VmRSS"]),
                "peak_rss_mb": mb(after["VmHWM"]) if hwm_reset else None,
                "peak_rss_sampled_mb": mb(sampler.peak),
                "peak_minus_before_mb": mb(max(after["VmHWM"] if hwm_reset else 0,
                                               sampler.peak) - before["VmRSS"]),
                "vmhwm_reset": hwm_reset})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", help="touxiang binary to start on a scratch data dir")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--url", default="http://127.0.0.1:18091")
    ap.add_argument("--key")
    ap.add_argument("--rows", type=int, default=5_200_000)
    ap.add_argument("--mode", default="both", choices=["raw", "multipart", "both"])
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="upload-rss-")
    proc = None
    try:
        csv_path = os.path.join(work, "bad.csv")
        write_csv(csv_path, args.rows)
        if args.serve:
            port = urllib.parse.urlparse(args.url).port
            data = os.path.join(work, "data")
            proc = subprocess.Popen([args.serve, "serve", "--addr", f"127.0.0.1:{port}",
                                     "--data-dir", data, "--insecure-no-auth"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pid = proc.pid
            for _ in range(600):
                try:
                    c, r = request(args.url, "GET", "/healthz", {})
                    r.read()
                    c.close()
                    if r.status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            settle(pid)
        elif args.pid:
            pid = args.pid
            settle(pid)
        else:
            sys.exit("give --serve BINARY or --pid PID")
        modes = ["raw", "multipart"] if args.mode == "both" else [args.mode]
        results = [upload(args, pid, csv_path, m, f"rss-{m}") for m in modes]
        print(json.dumps({"rows": args.rows, "csv_bytes": os.path.getsize(csv_path),
                          "server_pid": pid, "uploads": results}, indent=1))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
