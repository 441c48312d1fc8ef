//! Probe (not part of the product): does fine-tuning the top K encoder layers, jointly with a
//! flat class head, lift GB/T 4754 accuracy on the note items training holds out?
//!
//! The encoder is run in f32 from the dequantized 4-bit weights: the bottom 12−K layers once
//! (frozen, hidden states kept in memory), the top K layers and the head trained with candle's
//! autograd (AdamW, length-bucketed batches of 32, loss = −log P(any class under the gold code)).
//! First the head alone is trained on the frozen features (the "frozen + head" line), then
//! layers and head together, evaluated after every epoch (top-1 of the head's argmax class,
//! marginalised up the tree for section/division/group).
//!
//! ```sh
//! touxiang datasets gbt --out /tmp/gb
//! cargo run --release -p touxiang-training --features e5 --example ft_probe -- \
//!     target/touxiang-model ../shared/datasets/gbt4754-2017/taxonomy.csv \
//!     /tmp/gb/train.jsonl /tmp/gb/test.jsonl K EPOCHS [LR_ENC] [MAX_TRAIN]
//! ```
//!
//! Measured results are in README "Where GB/T accuracy stands".
use std::collections::HashMap;
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::borrow::Cow;
use touxiang_model::e5s1::{E5s1, StoredDType};
use touxiang_model::{E5Model, Kind, Precision};

type R<T> = Result<T, Box<dyn std::error::Error>>;

struct Lin {
    w: Var,
    b: Var,
}
impl Lin {
    fn fwd(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())
    }
}
struct Ln {
    w: Var,
    b: Var,
}
impl Ln {
    fn fwd(&self, x: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        xn.broadcast_mul(self.w.as_tensor())?
            .broadcast_add(self.b.as_tensor())
    }
}
struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    ao: Lin,
    aln: Ln,
    fi: Lin,
    fo: Lin,
    oln: Ln,
}

fn deq(f: &E5s1, name: &str, rows: usize, cols: usize) -> R<Tensor> {
    let raw = f.raw(name, StoredDType::Q4_0, rows * cols)?;
    let st = QStorage::from_data(Cow::Borrowed(raw), &Device::Cpu, GgmlDType::Q4_0)?;
    Ok(QTensor::new(st, (rows, cols))?.dequantize(&Device::Cpu)?)
}
fn vec1(f: &E5s1, name: &str, n: usize) -> R<Tensor> {
    Ok(Tensor::from_vec(f.f32s(name, n)?, n, &Device::Cpu)?)
}
fn lin(f: &E5s1, n: &str, o: usize, i: usize) -> R<Lin> {
    Ok(Lin {
        w: Var::from_tensor(&deq(f, &format!("{n}.w"), o, i)?)?,
        b: Var::from_tensor(&vec1(f, &format!("{n}.b"), o)?)?,
    })
}
fn ln(f: &E5s1, n: &str, h: usize) -> R<Ln> {
    Ok(Ln {
        w: Var::from_tensor(&vec1(f, &format!("{n}.w"), h)?)?,
        b: Var::from_tensor(&vec1(f, &format!("{n}.b"), h)?)?,
    })
}

fn layer_fwd(
    ly: &Layer,
    x: &Tensor,
    b: usize,
    l: usize,
    nh: usize,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let hd = x.dim(1)?;
    let dh = hd / nh;
    let heads = |t: Tensor| t.reshape((b, l, nh, dh))?.transpose(1, 2)?.contiguous();
    let q = heads((ly.q.fwd(x)? * (1.0 / (dh as f64).sqrt()))?)?;
    let k = heads(ly.k.fwd(x)?)?;
    let v = heads(ly.v.fwd(x)?)?;
    let att = candle_nn::ops::softmax(&q.matmul(&k.t()?.contiguous()?)?, D::Minus1)?;
    let ctx = att
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * l, hd))?;
    let x = ly.aln.fwd(&(x + ly.ao.fwd(&ctx)?)?, eps)?;
    let m = ly.fi.fwd(&x)?.gelu_erf()?;
    ly.oln.fwd(&(&x + ly.fo.fwd(&m)?)?, eps)
}

/// Indices of `xs` in runs of one sequence length, at most `max` per run.
fn same_length_runs(xs: &[Ex], max: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by_key(|&i| xs[i].len);
    order
        .chunk_by(|&a, &b| xs[a].len == xs[b].len)
        .flat_map(|run| run.chunks(max).map(<[usize]>::to_vec))
        .collect()
}

struct Ex {
    code: String,
    hid: Tensor, // [l, hd] after the frozen layers
    len: usize,
}

fn main() -> R<()> {
    let a: Vec<String> = std::env::args().collect();
    let model_dir = std::path::PathBuf::from(&a[1]);
    let k: usize = a[5].parse()?;
    let epochs: usize = a[6].parse()?;
    let lr_enc: f64 = a.get(7).map(|s| s.parse()).transpose()?.unwrap_or(3e-5);
    let max_train: usize = a
        .get(8)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(usize::MAX);
    // taxonomy
    let mut parent: HashMap<String, String> = HashMap::new();
    let mut classes = Vec::new();
    for r in csv::Reader::from_path(&a[2])?.records() {
        let r = r?;
        parent.insert(r[0].to_string(), r[3].to_string());
        if &r[1] == "class" {
            classes.push(r[0].to_string());
        }
    }
    let chain = |c: &str| -> Vec<String> {
        let mut v = vec![c.to_string()];
        let mut cur = c.to_string();
        while let Some(p) = parent.get(&cur).filter(|p| !p.is_empty()) {
            v.push(p.clone());
            cur = p.clone();
        }
        v.reverse();
        v
    }; // section..class
    let chains: Vec<Vec<String>> = classes.iter().map(|c| chain(c)).collect();
    let mut under: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, ch) in chains.iter().enumerate() {
        for c in ch {
            under.entry(c.clone()).or_default().push(i as u32);
        }
    }
    let read = |p: &str| -> R<Vec<(String, String)>> {
        let mut v = Vec::new();
        for line in std::fs::read_to_string(p)?.lines() {
            let j: serde_json::Value = serde_json::from_str(line)?;
            let c = j["code"].as_str().unwrap_or_default().to_string();
            if under.contains_key(&c) {
                v.push((j["text"].as_str().unwrap_or_default().to_string(), c));
            }
        }
        Ok(v)
    };
    let mut train = read(&a[3])?;
    let test = read(&a[4])?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    train.shuffle(&mut rng);
    train.truncate(max_train);
    eprintln!("train {} test {}", train.len(), test.len());

    let model = E5Model::ensure_and_load(&model_dir, Precision::F32)?;
    let bytes = std::fs::read(model_dir.join("e5-small-q4.bin"))?;
    let f = E5s1::parse(&bytes)?;
    let h = f.header;
    let (hd, ff, nh, eps) = (h.hidden, h.ffn, h.heads, h.eps);
    let word = deq(&f, "emb.word", h.vocab, hd)?;
    let pos = Tensor::from_vec(
        f.f32s("emb.pos", h.max_positions * hd)?,
        (h.max_positions, hd),
        &Device::Cpu,
    )?;
    let type0 = Tensor::from_vec(
        f.f32s("emb.type", h.type_vocab * hd)?[..hd].to_vec(),
        hd,
        &Device::Cpu,
    )?;
    let eln = ln(&f, "emb.ln", hd)?;
    let mut layers = Vec::new();
    for l in 0..h.layers {
        let n = |s: &str| format!("l{l}.{s}");
        layers.push(Layer {
            q: lin(&f, &n("q"), hd, hd)?,
            k: lin(&f, &n("k"), hd, hd)?,
            v: lin(&f, &n("v"), hd, hd)?,
            ao: lin(&f, &n("ao"), hd, hd)?,
            aln: ln(&f, &n("aln"), hd)?,
            fi: lin(&f, &n("fi"), ff, hd)?,
            fo: lin(&f, &n("fo"), hd, ff)?,
            oln: ln(&f, &n("oln"), hd)?,
        });
    }
    let frozen = h.layers - k;
    // frozen forward
    let t0 = Instant::now();
    let encode = |set: &[(String, String)]| -> R<Vec<Ex>> {
        let refs: Vec<&str> = set.iter().map(|(t, _)| t.as_str()).collect();
        let ids = model.tokenize(&refs, Kind::Query)?;
        let mut by_len: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, s) in ids.iter().enumerate() {
            by_len.entry(s.len()).or_default().push(i);
        }
        let mut out: Vec<Option<Ex>> = (0..set.len()).map(|_| None).collect();
        for (l, idx) in by_len {
            for chunk in idx.chunks(64) {
                let b = chunk.len();
                let flat: Vec<u32> = chunk.iter().flat_map(|&i| ids[i].clone()).collect();
                let t = Tensor::from_vec(flat, b * l, &Device::Cpu)?;
                let x = word.embedding(&t)?.reshape((b, l, hd))?;
                let x = x
                    .broadcast_add(&pos.narrow(0, 0, l)?)?
                    .broadcast_add(&type0)?;
                let mut x = eln.fwd(&x, eps)?.reshape((b * l, hd))?;
                for ly in &layers[..frozen] {
                    x = layer_fwd(ly, &x, b, l, nh, eps)?;
                }
                let x = x.reshape((b, l, hd))?.detach();
                for (j, &i) in chunk.iter().enumerate() {
                    out[i] = Some(Ex {
                        code: set[i].1.clone(),
                        hid: x.get(j)?.contiguous()?,
                        len: l,
                    });
                }
            }
        }
        Ok(out.into_iter().map(|e| e.expect("filled")).collect())
    };
    let tr = encode(&train)?;
    let te = encode(&test)?;
    eprintln!("frozen forward {:.1}s", t0.elapsed().as_secs_f64());
    let top = &layers[frozen..];
    let c = classes.len();
    let head_w = Var::zeros((c, hd), DType::F32, &Device::Cpu)?;
    let head_b = Var::zeros(c, DType::F32, &Device::Cpu)?;
    let scale = 1.0;

    let pooled = |xs: &[&Ex], grad: bool| -> candle_core::Result<Tensor> {
        let l = xs[0].len;
        let b = xs.len();
        let hs: Vec<Tensor> = xs.iter().map(|e| e.hid.clone()).collect();
        let mut x = Tensor::stack(&hs, 0)?.reshape((b * l, hd))?;
        if !grad {
            x = x.detach();
        }
        for ly in top {
            x = layer_fwd(ly, &x, b, l, nh, eps)?;
        }
        let p = x.reshape((b, l, hd))?.mean(1)?;
        let n = p.sqr()?.sum_keepdim(1)?.sqrt()?;
        p.broadcast_div(&n)
    };
    let mask = |xs: &[&Ex]| -> candle_core::Result<Tensor> {
        let mut m = vec![-1e9f32; xs.len() * c];
        for (i, e) in xs.iter().enumerate() {
            for &j in &under[&e.code] {
                m[i * c + j as usize] = 0.0;
            }
        }
        Tensor::from_vec(m, (xs.len(), c), &Device::Cpu)
    };
    let loss_of = |p: &Tensor, m: &Tensor| -> candle_core::Result<Tensor> {
        let logits =
            (p.matmul(&head_w.as_tensor().t()?)? * scale)?.broadcast_add(head_b.as_tensor())?;
        let all = logits.log_sum_exp(1)?;
        let ok = (logits + m)?.log_sum_exp(1)?;
        (all - ok)?.mean_all()
    };
    let evaluate = |xs: &[Ex], tag: &str| -> R<()> {
        let mut hit = [0usize; 4];
        let mut n = [0usize; 4];
        for run in same_length_runs(xs, 128) {
            let b: Vec<&Ex> = run.iter().map(|&i| &xs[i]).collect();
            let p = pooled(&b, false)?;
            let logits = p
                .matmul(&head_w.as_tensor().t()?)?
                .broadcast_add(head_b.as_tensor())?;
            let am = logits.argmax(1)?.to_vec1::<u32>()?;
            for (ex, &pi) in b.iter().zip(&am) {
                let gold = chain(&ex.code);
                let pred = &chains[pi as usize];
                for lv in 0..gold.len() {
                    n[lv] += 1;
                    if pred[lv] == gold[lv] {
                        hit[lv] += 1;
                    }
                }
            }
        }
        let pct: Vec<String> = (0..4)
            .map(|i| format!("{:.1}", 100.0 * hit[i] as f64 / n[i].max(1) as f64))
            .collect();
        eprintln!(
            "[{tag}] section/division/group/class top-1 %: {}",
            pct.join(" / ")
        );
        Ok(())
    };
    // batches of one length
    let batches = |rng: &mut rand::rngs::StdRng, bs: usize| -> Vec<Vec<usize>> {
        let mut by_len: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, e) in tr.iter().enumerate() {
            by_len.entry(e.len).or_default().push(i);
        }
        let mut out = Vec::new();
        for (_, mut v) in by_len {
            v.shuffle(rng);
            for ch in v.chunks(bs) {
                out.push(ch.to_vec());
            }
        }
        out.shuffle(rng);
        out
    };
    // Phase A: head only on frozen features (pooled once).
    let t1 = Instant::now();
    let mut feats: Vec<Tensor> = Vec::with_capacity(tr.len());
    {
        let mut slot: Vec<Option<Tensor>> = vec![None; tr.len()];
        for run in same_length_runs(&tr, 128) {
            let b: Vec<&Ex> = run.iter().map(|&i| &tr[i]).collect();
            let p = pooled(&b, false)?.detach();
            for (j, &i) in run.iter().enumerate() {
                slot[i] = Some(p.get(j)?);
            }
        }
        feats.extend(slot.into_iter().map(|t| t.expect("pooled")));
    }
    let mut opt_head = AdamW::new(
        vec![head_w.clone(), head_b.clone()],
        ParamsAdamW {
            lr: 1e-2,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    for ep in 0..15 {
        let mut idx: Vec<usize> = (0..tr.len()).collect();
        idx.shuffle(&mut rng);
        let mut tot = 0.0;
        for ch in idx.chunks(256) {
            let x = Tensor::stack(&ch.iter().map(|&i| feats[i].clone()).collect::<Vec<_>>(), 0)?;
            let refs: Vec<&Ex> = ch.iter().map(|&i| &tr[i]).collect();
            let loss = loss_of(&x, &mask(&refs)?)?;
            tot += loss.to_scalar::<f32>()?;
            opt_head.backward_step(&loss)?;
        }
        eprintln!("head ep {ep} loss {:.3}", tot / (tr.len() as f32 / 256.0));
    }
    eprintln!("head-only {:.1}s", t1.elapsed().as_secs_f64());
    evaluate(&te, "frozen + head")?;
    if k == 0 {
        return Ok(());
    }
    // Phase B: joint
    let mut enc_vars = Vec::new();
    for ly in top {
        for l in [&ly.q, &ly.k, &ly.v, &ly.ao, &ly.fi, &ly.fo] {
            enc_vars.push(l.w.clone());
            enc_vars.push(l.b.clone());
        }
        for n in [&ly.aln, &ly.oln] {
            enc_vars.push(n.w.clone());
            enc_vars.push(n.b.clone());
        }
    }
    let mut opt_enc = AdamW::new(
        enc_vars,
        ParamsAdamW {
            lr: lr_enc,
            weight_decay: 1e-2,
            ..Default::default()
        },
    )?;
    opt_head.set_learning_rate(2e-3);
    for ep in 0..epochs {
        let t = Instant::now();
        let bs = batches(&mut rng, 32);
        let nb = bs.len();
        let mut tot = 0.0;
        for (bi, b) in bs.iter().enumerate() {
            let refs: Vec<&Ex> = b.iter().map(|&i| &tr[i]).collect();
            let p = pooled(&refs, true)?;
            let loss = loss_of(&p, &mask(&refs)?)?;
            tot += loss.to_scalar::<f32>()?;
            let g = loss.backward()?;
            opt_enc.step(&g)?;
            opt_head.step(&g)?;
            if bi % 200 == 0 {
                eprintln!(
                    "ep {ep} batch {bi}/{nb} loss {:.3} {:.1}s",
                    tot / (bi + 1) as f32,
                    t.elapsed().as_secs_f64()
                );
            }
        }
        eprintln!("ep {ep} done {:.1}s", t.elapsed().as_secs_f64());
        evaluate(&te, &format!("tuned top {k}, epoch {ep}"))?;
    }
    Ok(())
}
