//! Linear softmax heads on frozen embeddings, trained with candle (AdamW, weight decay, mini-batches,
//! early stopping on the calibration loss).
//!
//! One trainer serves both the flat head over leaves and the per-level heads: every example names a
//! set of allowed outputs and the loss is `-log Σ_{k∈allowed} p_k` (for a leaf target that is the
//! usual cross-entropy; for a code above the leaves it is the likelihood of its subtree, i.e. the
//! flat head's probabilities marginalised up the tree).

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A linear layer `x → x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[k, dim]`
    pub w: Tensor,
    /// `[k]`
    pub b: Tensor,
}

impl Linear {
    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.w.dims()[0]
    }

    /// Log-probabilities `[n, k]` of the rows of `x` (`[n, dim]`).
    pub fn log_probs(&self, x: &Tensor) -> Result<Tensor> {
        let logits = x.matmul(&self.w.t()?)?.broadcast_add(&self.b)?;
        Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
    }

    /// Probabilities of the rows of `x`, as nested vectors.
    pub fn probs(&self, x: &Tensor) -> Result<Vec<Vec<f32>>> {
        Ok(self.log_probs(x)?.exp()?.to_vec2::<f32>()?)
    }
}

/// Training data for one head: row-major embeddings, allowed outputs and weights per example.
#[derive(Debug, Clone, Default)]
pub struct TargetSet {
    pub dim: usize,
    /// `n × dim`, row-major.
    pub x: Vec<f32>,
    pub allowed: Vec<Vec<u32>>,
    pub weights: Vec<f32>,
}

impl TargetSet {
    /// Empty set of vectors of length `dim`.
    pub fn new(dim: usize) -> Self {
        TargetSet {
            dim,
            ..Default::default()
        }
    }
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.allowed.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }
    /// Add one example.
    pub fn push(&mut self, x: &[f32], allowed: Vec<u32>, weight: f32) {
        self.x.extend_from_slice(x);
        self.allowed.push(allowed);
        self.weights.push(weight);
    }
}

/// Optimiser settings of a head.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HeadConfig {
    pub lr: f64,
    pub weight_decay: f64,
    pub batch: usize,
    pub max_epochs: usize,
    /// Epochs without calibration-loss improvement before stopping.
    pub patience: usize,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            lr: 0.02,
            weight_decay: 1e-4,
            batch: 512,
            max_epochs: 40,
            patience: 2,
        }
    }
}

/// What happened while training one head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadLog {
    pub outputs: usize,
    pub train_examples: usize,
    pub epochs_run: usize,
    /// 0 = the prototype initialisation was never improved on.
    pub best_epoch: usize,
    pub best_calib_loss: f64,
    pub train_loss_last: f64,
}

fn batch_tensors(
    set: &TargetSet,
    idx: &[usize],
    k: usize,
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let d = set.dim;
    let mut x = Vec::with_capacity(idx.len() * d);
    let mut mask = vec![-1e4f32; idx.len() * k];
    let mut w = Vec::with_capacity(idx.len());
    for (r, &i) in idx.iter().enumerate() {
        x.extend_from_slice(&set.x[i * d..(i + 1) * d]);
        for &a in &set.allowed[i] {
            mask[r * k + a as usize] = 0.0;
        }
        w.push(set.weights[i]);
    }
    let n = idx.len();
    Ok((
        Tensor::from_vec(x, (n, d), dev)?,
        Tensor::from_vec(mask, (n, k), dev)?,
        Tensor::from_vec(w, n, dev)?,
    ))
}

fn masked_loss(
    lin_w: &Tensor,
    lin_b: &Tensor,
    x: &Tensor,
    mask: &Tensor,
    w: &Tensor,
) -> Result<Tensor> {
    let logits = x.matmul(&lin_w.t()?)?.broadcast_add(lin_b)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let ll = (logp + mask)?.log_sum_exp(D::Minus1)?; // [n]
    let num = (ll * w)?.sum_all()?;
    let den = w.sum_all()?;
    Ok(num.neg()?.broadcast_div(&den)?)
}

/// Weighted mean loss of a set under fixed weights.
fn eval_loss(w: &Tensor, b: &Tensor, set: &TargetSet, k: usize, dev: &Device) -> Result<f64> {
    let n = set.len();
    if n == 0 {
        return Ok(f64::NAN);
    }
    let mut num = 0f64;
    let mut den = 0f64;
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(2048) {
        let (x, mask, wt) = batch_tensors(set, chunk, k, dev)?;
        let logits = x.matmul(&w.t()?)?.broadcast_add(b)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let ll = (logp + mask)?.log_sum_exp(D::Minus1)?;
        num -= (ll * &wt)?.sum_all()?.to_scalar::<f32>()? as f64;
        den += wt.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(num / den.max(1e-12))
}

/// Train a `k`-way softmax head. Deterministic for a given `seed` (prototype init, seeded shuffles).
/// When `calib` is empty, trains for `max_epochs` without early stopping.
pub fn train_linear(
    k: usize,
    train: &TargetSet,
    calib: &TargetSet,
    cfg: &HeadConfig,
    seed: u64,
) -> Result<(Linear, HeadLog)> {
    if train.is_empty() {
        return Err(TrainError::Invalid(
            "no training examples for a head".into(),
        ));
    }
    if k == 0 {
        return Err(TrainError::Invalid(
            "a head needs at least one output".into(),
        ));
    }
    let dev = Device::Cpu;
    let d = train.dim;
    // Prototype initialisation: row k = scale · (normalised weighted mean of the examples that
    // allow output k); the scale is picked by calibration loss. Softmax regression is convex, so
    // this only shortens training (a few epochs instead of tens) and stays deterministic.
    let mut cent = vec![0f32; k * d];
    for i in 0..train.len() {
        let row = &train.x[i * d..(i + 1) * d];
        let w_i = train.weights[i] / train.allowed[i].len().max(1) as f32;
        for &a in &train.allowed[i] {
            let c = &mut cent[a as usize * d..(a as usize + 1) * d];
            c.iter_mut().zip(row).for_each(|(c, x)| *c += w_i * x);
        }
    }
    for c in cent.chunks_mut(d) {
        crate::embed::l2_normalize(c);
    }
    let cent = Tensor::from_vec(cent, (k, d), &dev)?;
    let zero_b = Tensor::zeros(k, DType::F32, &dev)?;
    let probe = if calib.is_empty() { train } else { calib };
    let mut init = (f64::INFINITY, 1.0f64);
    for s in [5.0, 10.0, 20.0, 40.0] {
        let l = eval_loss(&(&cent * s)?, &zero_b, probe, k, &dev)?;
        if l < init.0 {
            init = (l, s);
        }
    }
    let w = Var::from_tensor(&(&cent * init.1)?)?;
    let b = Var::zeros(k, DType::F32, &dev)?;
    let mut opt = AdamW::new(
        vec![w.clone(), b.clone()],
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best = (
        f64::INFINITY,
        0usize,
        w.as_tensor().copy()?,
        b.as_tensor().copy()?,
    );
    let mut last_train = f64::NAN;
    let mut epochs_run = 0;
    for epoch in 0..cfg.max_epochs {
        epochs_run = epoch + 1;
        let t_epoch = std::time::Instant::now();
        order.shuffle(&mut rng);
        let mut tot = 0f64;
        let mut nb = 0usize;
        for chunk in order.chunks(cfg.batch.max(1)) {
            let (x, mask, wt) = batch_tensors(train, chunk, k, &dev)?;
            let loss = masked_loss(w.as_tensor(), b.as_tensor(), &x, &mask, &wt)?;
            opt.backward_step(&loss)?;
            tot += loss.to_scalar::<f32>()? as f64;
            nb += 1;
        }
        last_train = tot / nb.max(1) as f64;
        if calib.is_empty() {
            best = (
                last_train,
                epoch,
                w.as_tensor().copy()?,
                b.as_tensor().copy()?,
            );
            continue;
        }
        let cl = eval_loss(w.as_tensor(), b.as_tensor(), calib, k, &dev)?;
        tracing::info!(
            epoch,
            train_loss = last_train,
            calib_loss = cl,
            secs = t_epoch.elapsed().as_secs_f64(),
            "head epoch"
        );
        if cl < best.0 - 1e-5 {
            best = (cl, epoch + 1, w.as_tensor().copy()?, b.as_tensor().copy()?);
        } else if epoch + 1 - best.1 > cfg.patience {
            break;
        }
    }
    let log = HeadLog {
        outputs: k,
        train_examples: train.len(),
        epochs_run,
        best_epoch: best.1,
        best_calib_loss: best.0,
        train_loss_last: last_train,
    };
    Ok((
        Linear {
            w: best.2,
            b: best.3,
        },
        log,
    ))
}
