//! Quantized matrix multiply of the serving path: 4-bit weights (GGML `Q4_0`, exactly as stored)
//! × 8-bit activations (`Q8_0`: one scale per 32 values), accumulated in i32, scaled in f32.
//!
//! The inner product of a Q4_0 row and a Q8_0 row is `Σ_b dw_b · da_b · Σ_j (q_bj − 8) · a_bj`,
//! one float scale pair per 32-value block. Done block by block (as GGML and the wheel's C engine
//! do) every block pays an int→float conversion and a fused multiply-add on top of its 32
//! multiply-accumulates. Here the bytes are laid out so that each 32-bit lane of a 256-bit
//! register accumulates *one block* (or one part of a block): a group of `G` ≤ 8 blocks is
//! interleaved in 4-byte chunks, `G` integer dot instructions (`vpdpbusd` with AVX-512 VNNI, or
//! `vpmaddubsw`+`vpmaddwd` with AVX2) finish all `G` block sums at once, and one conversion and
//! one multiply-add apply the `8` lane scales. The `−8` offset of the nibbles is folded into the
//! accumulator's initial value (`−8 · Σ a` per lane, computed when activations are quantized).
//! Outputs are computed in register tiles of up to 4 weight rows × 3 tokens, so each loaded
//! weight vector serves 3 tokens and each activation vector 4 rows.
//!
//! Weights are unpacked once at load to one byte per nibble (21 MB for the 12 layers of
//! multilingual-e5-small); the float scales stay as stored (f16 → f32), so the products are those
//! of the file's weights, not a re-quantization of them. A portable scalar path computes the same
//! sums and is what the SIMD paths are tested against.

use rayon::prelude::*;

/// Values per quantization block (GGML `QK4_0` / `QK8_0`).
pub const QK: usize = 32;
/// Bytes of one stored Q4_0 block: f16 scale + 16 bytes of nibbles.
const Q4_0_BYTES: usize = 18;
/// 32-bit lanes per 256-bit register.
const LANES: usize = 8;
/// Weight rows per register tile.
const TILE_ROWS: usize = 4;
/// Tokens per register tile.
const TILE_TOKENS: usize = 3;

/// How the input axis of length `n` (a multiple of 32) is split into lane groups, and where each
/// packed byte comes from. Shared by weights and activations so both agree by construction.
#[derive(Debug, Clone)]
struct Layout {
    n: usize,
    /// packed position → natural index.
    perm: Vec<u32>,
    /// packed 4-byte chunk → natural 4-byte chunk (the layout moves whole chunks).
    chunk_perm: Vec<u32>,
    /// Per lane (8 per group): the block it belongs to.
    lane_block: Vec<u32>,
    /// Per lane: natural index range `[start, start + len)` whose bytes it accumulates.
    lane_range: Vec<(u32, u32)>,
    /// Per group: (first packed byte, number of 32-byte vectors = blocks in the group).
    groups: Vec<(usize, usize)>,
}

impl Layout {
    fn new(n: usize) -> Self {
        assert!(
            n > 0 && n.is_multiple_of(QK),
            "input width {n} is not a multiple of {QK}"
        );
        let blocks = n / QK;
        let mut perm = vec![0u32; n];
        let (mut lane_block, mut lane_range, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        let mut b0 = 0;
        while b0 < blocks {
            // Largest power of two ≤ 8 that still fits.
            let g = [8, 4, 2, 1]
                .into_iter()
                .find(|&g| b0 + g <= blocks)
                .unwrap_or(1);
            let off = b0 * QK;
            // Vector k (of g), lane l: block l % g, part l / g of the block (8/g parts of 4g
            // bytes); within the part, chunk k of 4 bytes.
            for k in 0..g {
                for l in 0..LANES {
                    let (b, p) = (b0 + l % g, l / g);
                    for i in 0..4 {
                        perm[off + k * QK + l * 4 + i] = (b * QK + p * 4 * g + 4 * k + i) as u32;
                    }
                }
            }
            for l in 0..LANES {
                let (b, p) = (b0 + l % g, l / g);
                lane_block.push(b as u32);
                lane_range.push(((b * QK + p * 4 * g) as u32, (4 * g) as u32));
            }
            groups.push((off, g));
            b0 += g;
        }
        let chunk_perm = perm.chunks_exact(4).map(|c| c[0] / 4).collect();
        Self {
            n,
            perm,
            chunk_perm,
            lane_block,
            lane_range,
            groups,
        }
    }

    fn lanes(&self) -> usize {
        self.lane_block.len()
    }
}

/// A linear layer `y = x·Wᵀ + b` with `W` kept as Q4_0 nibbles in the packed lane layout.
pub struct PackedLinear {
    nout: usize,
    layout: Layout,
    /// `[nout][n]` unsigned nibbles (0..=15) in packed order.
    w: Vec<u8>,
    /// `[nout][lanes]` the f32 block scale of each lane.
    ws: Vec<f32>,
    bias: Vec<f32>,
}

/// Activations quantized to Q8_0 in the packed layout of one input width.
pub struct QuantActs {
    n: usize,
    tokens: usize,
    /// `[tokens][n]`.
    q: Vec<i8>,
    /// `[tokens][lanes]` block scale of each lane.
    d: Vec<f32>,
    /// `[tokens][lanes]` initial accumulator: `−8 · Σ` of the lane's quantized values.
    init: Vec<i32>,
}

/// Elementwise function applied to each output before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    None,
    /// Exact (erf) GELU, as BERT/XLM-R use.
    Gelu,
}

/// Which instruction set the kernel uses (chosen once per call from what the CPU has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl Isa {
    /// The fastest path this CPU supports, or a slower one named by `TOUXIANG_KERNEL`
    /// (`scalar`, `avx2`) for comparison and troubleshooting (`scalar` also turns off the AVX2
    /// builds of the elementwise steps, see [`simd::avx2_fma`]).
    pub fn detect() -> Self {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Self::best();
            match std::env::var("TOUXIANG_KERNEL").as_deref() {
                Ok("scalar") => Isa::Scalar,
                #[cfg(target_arch = "x86_64")]
                Ok("avx2") if best != Isa::Scalar => Isa::Avx2,
                _ => best,
            }
        })
    }

    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }
}

impl PackedLinear {
    /// Build from stored Q4_0 blocks of a `[nout, nin]` matrix (row-major, 18 bytes per block)
    /// and its bias.
    pub fn from_q4_0(raw: &[u8], nout: usize, nin: usize, bias: Vec<f32>) -> Self {
        let layout = Layout::new(nin);
        let nb = nin / QK;
        assert_eq!(raw.len(), nout * nb * Q4_0_BYTES, "Q4_0 byte count");
        assert_eq!(bias.len(), nout, "bias length");
        let mut w = vec![0u8; nout * nin];
        let mut ws = vec![0f32; nout * layout.lanes()];
        let mut natural = vec![0u8; nin];
        let mut scales = vec![0f32; nb];
        for r in 0..nout {
            for b in 0..nb {
                let blk = &raw[(r * nb + b) * Q4_0_BYTES..][..Q4_0_BYTES];
                scales[b] = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for j in 0..16 {
                    natural[b * QK + j] = blk[2 + j] & 0x0F;
                    natural[b * QK + j + 16] = blk[2 + j] >> 4;
                }
            }
            let row = &mut w[r * nin..(r + 1) * nin];
            for (dst, &src) in row.iter_mut().zip(&layout.perm) {
                *dst = natural[src as usize];
            }
            for (dst, &b) in ws[r * layout.lanes()..(r + 1) * layout.lanes()]
                .iter_mut()
                .zip(&layout.lane_block)
            {
                *dst = scales[b as usize];
            }
        }
        Self {
            nout,
            layout,
            w,
            ws,
            bias,
        }
    }

    /// Stack layers that share an input (e.g. Q, K and V) into one of `Σ nout` outputs.
    pub fn concat(parts: Vec<PackedLinear>) -> Self {
        let n = parts[0].layout.n;
        assert!(parts.iter().all(|p| p.layout.n == n), "inputs differ");
        let mut out = Self {
            nout: 0,
            layout: parts[0].layout.clone(),
            w: Vec::new(),
            ws: Vec::new(),
            bias: Vec::new(),
        };
        for p in parts {
            out.nout += p.nout;
            out.w.extend(p.w);
            out.ws.extend(p.ws);
            out.bias.extend(p.bias);
        }
        out
    }

    pub fn nout(&self) -> usize {
        self.nout
    }

    pub fn nin(&self) -> usize {
        self.layout.n
    }

    /// An empty activation buffer for this layer's input width.
    pub fn acts(&self) -> QuantActs {
        QuantActs {
            n: self.layout.n,
            tokens: 0,
            q: Vec::new(),
            d: Vec::new(),
            init: Vec::new(),
        }
    }

    /// Quantize `x` (`[tokens][nin]`) into `acts` (reusing its buffers).
    pub fn quantize(&self, x: &[f32], acts: &mut QuantActs) {
        let (n, lanes) = (self.layout.n, self.layout.lanes());
        assert_eq!(acts.n, n, "activation buffer of another width");
        assert_eq!(x.len() % n, 0, "input length");
        let tokens = x.len() / n;
        acts.tokens = tokens;
        acts.q.resize(tokens * n, 0);
        acts.d.resize(tokens * lanes, 0.0);
        acts.init.resize(tokens * lanes, 0);
        type Row<'a> = (((&'a [f32], &'a mut [i8]), &'a mut [f32]), &'a mut [i32]);
        let lay = &self.layout;
        let work = |(((row, q), d), init): Row| quantize_row(lay, row, q, d, init);
        assert!(n <= 4096, "input width {n} above 4096");
        let it = x
            .par_chunks_exact(n)
            .zip(acts.q.par_chunks_exact_mut(n))
            .zip(acts.d.par_chunks_exact_mut(lanes))
            .zip(acts.init.par_chunks_exact_mut(lanes));
        if tokens >= 16 {
            it.for_each(work);
        } else {
            x.chunks_exact(n)
                .zip(acts.q.chunks_exact_mut(n))
                .zip(acts.d.chunks_exact_mut(lanes))
                .zip(acts.init.chunks_exact_mut(lanes))
                .for_each(work);
        }
    }

    /// `y[tokens][nout] = epilogue(acts · Wᵀ + bias)`, parallel over output rows.
    pub fn forward(&self, acts: &QuantActs, y: &mut Vec<f32>, ep: Epilogue) {
        self.forward_with(Isa::detect(), acts, y, ep)
    }

    /// As [`PackedLinear::forward`] on a chosen instruction set (tests compare them).
    pub fn forward_with(&self, isa: Isa, acts: &QuantActs, y: &mut Vec<f32>, ep: Epilogue) {
        assert_eq!(acts.n, self.layout.n, "activation width");
        self.matmul(isa, acts, y);
        if ep == Epilogue::Gelu {
            gelu_slice(y);
        }
    }

    /// `y = acts · Wᵀ + bias`.
    fn matmul(&self, isa: Isa, acts: &QuantActs, y: &mut Vec<f32>) {
        let (t, nout) = (acts.tokens, self.nout);
        // Every element is written below: no need to clear old contents.
        y.resize(t * nout, 0.0);
        if t == 0 {
            return;
        }
        let tiles = nout.div_ceil(TILE_ROWS);
        // Enough chunks to balance 2+ threads, few enough to keep per-task overhead small.
        let per_chunk = tiles
            .div_ceil(rayon::current_num_threads().max(1) * 4)
            .max(1);
        let out = SyncPtr(y.as_mut_ptr());
        (0..tiles.div_ceil(per_chunk))
            .into_par_iter()
            .for_each(|c| {
                let r0 = c * per_chunk * TILE_ROWS;
                let r1 = ((c + 1) * per_chunk * TILE_ROWS).min(nout);
                // Token blocks keep the activations of one block hot while the chunk's weight rows
                // stream past them.
                const TOKEN_BLOCK: usize = 96;
                let mut t0 = 0;
                while t0 < t {
                    let t1 = (t0 + TOKEN_BLOCK).min(t);
                    let mut r = r0;
                    while r < r1 {
                        let nr = (r1 - r).min(TILE_ROWS);
                        let mut tt = t0;
                        while tt < t1 {
                            let nt = (t1 - tt).min(TILE_TOKENS);
                            // SAFETY: each (row, token) output is written by exactly one tile, and
                            // chunks cover disjoint row ranges.
                            unsafe { self.tile(isa, acts, r, nr, tt, nt, out) };
                            tt += nt;
                        }
                        r += nr;
                    }
                    t0 = t1;
                }
            });
    }

    /// One register tile: rows `r..r+nr` × tokens `t..t+nt`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        &self,
        isa: Isa,
        acts: &QuantActs,
        r: usize,
        nr: usize,
        t: usize,
        nt: usize,
        out: SyncPtr,
    ) {
        let mut sums = [[0f32; TILE_TOKENS]; TILE_ROWS];
        match isa {
            Isa::Scalar => self.tile_scalar(acts, r, nr, t, nt, &mut sums),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Vnni => {
                macro_rules! dispatch {
                    ($($a:literal $b:literal),*) => {
                        match (nr, nt) {
                            $(($a, $b) => {
                                if isa == Isa::Vnni {
                                    x86::tile_vnni::<$a, $b>(self, acts, r, t, &mut sums)
                                } else {
                                    x86::tile_avx2::<$a, $b>(self, acts, r, t, &mut sums)
                                }
                            })*
                            _ => unreachable!("tile {nr}×{nt}"),
                        }
                    };
                }
                dispatch!(4 3, 4 2, 4 1, 3 3, 3 2, 3 1, 2 3, 2 2, 2 1, 1 3, 1 2, 1 1)
            }
        }
        for (i, row) in sums.iter().enumerate().take(nr) {
            for (j, &s) in row.iter().enumerate().take(nt) {
                let v = s + self.bias[r + i];
                // SAFETY: in bounds (t + j < tokens, r + i < nout); disjoint per tile.
                unsafe { *out.0.add((t + j) * self.nout + r + i) = v };
            }
        }
    }

    fn tile_scalar(
        &self,
        acts: &QuantActs,
        r: usize,
        nr: usize,
        t: usize,
        nt: usize,
        sums: &mut [[f32; TILE_TOKENS]; TILE_ROWS],
    ) {
        let (n, lanes) = (self.layout.n, self.layout.lanes());
        for (i, row_sums) in sums.iter_mut().enumerate().take(nr) {
            let w = &self.w[(r + i) * n..][..n];
            let ws = &self.ws[(r + i) * lanes..][..lanes];
            for (j, out) in row_sums.iter_mut().enumerate().take(nt) {
                let a = &acts.q[(t + j) * n..][..n];
                let ad = &acts.d[(t + j) * lanes..][..lanes];
                let init = &acts.init[(t + j) * lanes..][..lanes];
                let mut acc = 0f32;
                for (gi, &(off, g)) in self.layout.groups.iter().enumerate() {
                    let mut lane = [0i32; LANES];
                    lane.copy_from_slice(&init[gi * LANES..][..LANES]);
                    for k in 0..g {
                        for (l, li) in lane.iter_mut().enumerate() {
                            let p = off + k * QK + l * 4;
                            for b in 0..4 {
                                *li += w[p + b] as i32 * a[p + b] as i32;
                            }
                        }
                    }
                    for (l, &li) in lane.iter().enumerate() {
                        acc += li as f32 * (ws[gi * LANES + l] * ad[gi * LANES + l]);
                    }
                }
                *out = acc;
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to write disjoint elements from parallel tasks (see `forward_with`).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// `eˣ` in f32 (Cephes `expf`: Cody–Waite reduction, degree-6 polynomial, ~1 ulp), written
/// branch-free so loops over slices vectorize; inputs are clamped to the finite range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.0, 88.0);
    let kb = x * std::f32::consts::LOG2_E + MAGIC;
    let k = kb - MAGIC;
    let r = x - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^k from the integer k held in kb's mantissa (integer ops only, so this vectorizes).
    let ki = kb.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    f32::from_bits((ki.wrapping_add(127) << 23) as u32) * y
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4_f32;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// Exact (erf) GELU: `x · Φ(x)`, to within 10⁻⁷·|x|.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU in place over a slice (vectorized; parallel when large).
pub fn gelu_slice(x: &mut [f32]) {
    const CHUNK: usize = 16 * 1024;
    let f = |c: &mut [f32]| simd::map(c, gelu);
    if x.len() > 2 * CHUNK {
        x.par_chunks_mut(CHUNK).for_each(f);
    } else {
        f(x);
    }
}

/// Round to nearest (ties to even) for |v| < 2²²: branch-free and vectorizable, unlike
/// `round_ties_even` which is a libm call on baseline x86-64. (Reference for [`round_to_i8`].)
#[cfg(test)]
fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `round_small(v) as i8` for v in [−128, 127], with integer ops only: after adding 1.5·2²³
/// the low mantissa byte is the rounded value in two's complement.
#[inline(always)]
fn round_to_i8(v: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC).to_bits() as u8 as i8
}

/// Quantize one token's activations into the packed layout (see [`PackedLinear::quantize`]).
fn quantize_row(lay: &Layout, row: &[f32], q: &mut [i8], d: &mut [f32], init: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd::avx2_fma() {
            // SAFETY: `avx2_fma` checked the features.
            return unsafe { quantize_row_avx2(lay, row, q, d, init) };
        }
    }
    quantize_row_generic(lay, row, q, d, init)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(
    lay: &Layout,
    row: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    init: &mut [i32],
) {
    quantize_row_generic(lay, row, q, d, init)
}

#[inline(always)]
fn quantize_row_generic(lay: &Layout, row: &[f32], q: &mut [i8], d: &mut [f32], init: &mut [i32]) {
    let (n, lanes) = (lay.n, lay.lanes());
    let mut natural = [0i8; 4096];
    let natural = &mut natural[..n];
    let mut bscale = [0f32; 128];
    for (b, (xs, qs)) in row
        .chunks_exact(QK)
        .zip(natural.chunks_exact_mut(QK))
        .enumerate()
    {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = amax / 127.0;
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for (o, v) in qs.iter_mut().zip(xs) {
            *o = round_to_i8((v * inv).clamp(-127.0, 127.0));
        }
        bscale[b] = s;
    }
    for (dst, &src) in q.chunks_exact_mut(4).zip(&lay.chunk_perm) {
        dst.copy_from_slice(&natural[src as usize * 4..][..4]);
    }
    for l in 0..lanes {
        d[l] = bscale[lay.lane_block[l] as usize];
        let (s, len) = lay.lane_range[l];
        let sum: i32 = natural[s as usize..(s + len) as usize]
            .iter()
            .map(|&v| v as i32)
            .sum();
        init[l] = -8 * sum;
    }
}

/// Elementwise loops compiled for AVX2+FMA when the CPU has them (the crate itself targets
/// baseline x86-64, where these loops would run 4-wide without FMA, or not vectorize at all).
pub mod simd {
    /// Whether the AVX2+FMA builds may run: the CPU has them and `TOUXIANG_KERNEL` does not
    /// ask for the scalar path (one decision, [`super::Isa::detect`], for every SIMD path).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn avx2_fma() -> bool {
        super::Isa::detect() != super::Isa::Scalar
    }

    /// `x[i] = f(x[i])`.
    #[inline(always)]
    pub fn map(x: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
        #[cfg(target_arch = "x86_64")]
        {
            if avx2_fma() {
                // SAFETY: `avx2_fma` checked the features.
                return unsafe { map_avx2(x, f) };
            }
        }
        x.iter_mut().for_each(|v| *v = f(*v));
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn map_avx2(x: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
        x.iter_mut().for_each(|v| *v = f(*v));
    }

    /// Run `f` compiled with AVX2+FMA enabled when available (for closures whose loops should
    /// vectorize with them; `f` must be `#[inline(always)]`-friendly).
    #[inline(always)]
    pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        {
            if avx2_fma() {
                // SAFETY: `avx2_fma` checked the features.
                return unsafe { call_avx2(f) };
            }
        }
        f()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn call_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedLinear, QuantActs, LANES, QK, TILE_ROWS, TILE_TOKENS};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    macro_rules! tile_body {
        ($lin:ident, $acts:ident, $r:ident, $t:ident, $sums:ident, $R:ident, $T:ident, $dot:expr) => {{
            let (n, lanes) = ($lin.layout.n, $lin.layout.lanes());
            let wp: [*const u8; $R] = std::array::from_fn(|i| $lin.w.as_ptr().add(($r + i) * n));
            let wsp: [*const f32; $R] =
                std::array::from_fn(|i| $lin.ws.as_ptr().add(($r + i) * lanes));
            let ap: [*const i8; $T] = std::array::from_fn(|j| $acts.q.as_ptr().add(($t + j) * n));
            let adp: [*const f32; $T] =
                std::array::from_fn(|j| $acts.d.as_ptr().add(($t + j) * lanes));
            let ip: [*const i32; $T] =
                std::array::from_fn(|j| $acts.init.as_ptr().add(($t + j) * lanes));
            let mut acc = [[_mm256_setzero_ps(); $T]; $R];
            for (gi, &(off, g)) in $lin.layout.groups.iter().enumerate() {
                let lo = gi * LANES;
                let mut isum: [[__m256i; $T]; $R] = [[_mm256_setzero_si256(); $T]; $R];
                for j in 0..$T {
                    let init = _mm256_loadu_si256(ip[j].add(lo) as *const __m256i);
                    for i in 0..$R {
                        isum[i][j] = init;
                    }
                }
                for k in 0..g {
                    let p = off + k * QK;
                    let av: [__m256i; $T] =
                        std::array::from_fn(|j| _mm256_loadu_si256(ap[j].add(p) as *const __m256i));
                    for i in 0..$R {
                        let wv = _mm256_loadu_si256(wp[i].add(p) as *const __m256i);
                        for j in 0..$T {
                            isum[i][j] = $dot(isum[i][j], wv, av[j]);
                        }
                    }
                }
                let ad: [__m256; $T] = std::array::from_fn(|j| _mm256_loadu_ps(adp[j].add(lo)));
                for i in 0..$R {
                    let ws = _mm256_loadu_ps(wsp[i].add(lo));
                    for j in 0..$T {
                        acc[i][j] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(isum[i][j]),
                            _mm256_mul_ps(ws, ad[j]),
                            acc[i][j],
                        );
                    }
                }
            }
            for i in 0..$R {
                for j in 0..$T {
                    $sums[i][j] = hsum(acc[i][j]);
                }
            }
        }};
    }

    #[inline(always)]
    unsafe fn dot_vnni(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, w, a)
    }

    #[inline(always)]
    unsafe fn dot_avx2(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // Nibbles ≤ 15 and |a| ≤ 127: the i16 pair sums (≤ 3810) cannot saturate.
        let p = _mm256_maddubs_epi16(w, a);
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }

    /// # Safety
    /// The CPU must have AVX-512 VNNI + VL, AVX2 and FMA; rows/tokens in range.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
    pub(super) unsafe fn tile_vnni<const R: usize, const T: usize>(
        lin: &PackedLinear,
        acts: &QuantActs,
        r: usize,
        t: usize,
        sums: &mut [[f32; TILE_TOKENS]; TILE_ROWS],
    ) {
        tile_body!(lin, acts, r, t, sums, R, T, dot_vnni)
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; rows/tokens in range.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2<const R: usize, const T: usize>(
        lin: &PackedLinear,
        acts: &QuantActs,
        r: usize,
        t: usize,
        sums: &mut [[f32; TILE_TOKENS]; TILE_ROWS],
    ) {
        tile_body!(lin, acts, r, t, sums, R, T, dot_avx2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random Q4_0 blocks and f32 inputs.
    fn fixture(nout: usize, nin: usize, tokens: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
        let mut s = 0x9E37_79B9u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut raw = Vec::new();
        for _ in 0..nout * nin / QK {
            let d = half::f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-4);
            raw.extend(d.to_le_bytes());
            raw.extend((0..16).map(|_| next() as u8));
        }
        let bias = (0..nout)
            .map(|_| (next() % 200) as f32 / 100.0 - 1.0)
            .collect();
        let x = (0..tokens * nin)
            .map(|_| (next() % 2001) as f32 / 100.0 - 10.0)
            .collect();
        (raw, bias, x)
    }

    /// Plain float reference: dequantized weights × quantize-dequantized activations.
    fn reference(raw: &[u8], nout: usize, nin: usize, bias: &[f32], x: &[f32]) -> Vec<f32> {
        let nb = nin / QK;
        let mut wf = vec![0f32; nout * nin];
        for r in 0..nout {
            for b in 0..nb {
                let blk = &raw[(r * nb + b) * Q4_0_BYTES..];
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for j in 0..16 {
                    wf[r * nin + b * QK + j] = ((blk[2 + j] & 15) as f32 - 8.0) * d;
                    wf[r * nin + b * QK + j + 16] = ((blk[2 + j] >> 4) as f32 - 8.0) * d;
                }
            }
        }
        let mut xq = x.to_vec();
        for blk in xq.chunks_exact_mut(QK) {
            let s = blk.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            // Same arithmetic as `quantize` (multiply by the inverse) so rounding agrees.
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            for v in blk.iter_mut() {
                *v = if s > 0.0 {
                    (*v * inv).round_ties_even().clamp(-127.0, 127.0) * s
                } else {
                    0.0
                };
            }
        }
        let t = x.len() / nin;
        let mut y = vec![0f32; t * nout];
        for tt in 0..t {
            for r in 0..nout {
                let mut s = 0f64;
                for i in 0..nin {
                    s += wf[r * nin + i] as f64 * xq[tt * nin + i] as f64;
                }
                y[tt * nout + r] = s as f32 + bias[r];
            }
        }
        y
    }

    #[test]
    fn layout_is_a_permutation_and_lanes_cover_blocks() {
        for n in [32, 64, 96, 128, 384, 416, 1536] {
            let l = Layout::new(n);
            let mut seen = l.perm.clone();
            seen.sort_unstable();
            assert!(
                seen.iter().enumerate().all(|(i, &v)| v as usize == i),
                "n={n}"
            );
            for (c, &src) in l.chunk_perm.iter().enumerate() {
                for i in 0..4 {
                    assert_eq!(l.perm[c * 4 + i], src * 4 + i as u32);
                }
            }
            let covered: u32 = l.lane_range.iter().map(|r| r.1).sum();
            assert_eq!(covered as usize, n);
            assert_eq!(l.lanes(), l.groups.len() * LANES);
        }
    }

    #[test]
    fn every_isa_matches_the_float_reference() {
        // Widths with 8-, 4-, 2- and 1-block groups; ragged row and token tiles.
        for (nout, nin, tokens) in [(13, 384, 7), (6, 96, 1), (5, 1536, 4), (9, 224, 5)] {
            let (raw, bias, x) = fixture(nout, nin, tokens);
            let want = reference(&raw, nout, nin, &bias, &x);
            let lin = PackedLinear::from_q4_0(&raw, nout, nin, bias);
            let mut acts = lin.acts();
            lin.quantize(&x, &mut acts);
            let mut isas = vec![Isa::Scalar];
            #[cfg(target_arch = "x86_64")]
            {
                // What the CPU has (not `TOUXIANG_KERNEL`): every path it can run is checked.
                let best = Isa::best();
                if best != Isa::Scalar {
                    isas.push(Isa::Avx2);
                }
                if best == Isa::Vnni {
                    isas.push(Isa::Vnni);
                }
            }
            for isa in isas {
                let mut y = Vec::new();
                lin.forward_with(isa, &acts, &mut y, Epilogue::None);
                for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                        "{isa:?} {nout}x{nin} t={tokens} out {i}: {a} vs {b}"
                    );
                }
                let mut g = Vec::new();
                lin.forward_with(isa, &acts, &mut g, Epilogue::Gelu);
                assert!((g[0] - gelu(y[0])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn concat_stacks_outputs() {
        let (raw, bias, x) = fixture(8, 64, 2);
        let (a, b) = raw.split_at(4 * 2 * Q4_0_BYTES);
        let whole = PackedLinear::from_q4_0(&raw, 8, 64, bias.clone());
        let parts = PackedLinear::concat(vec![
            PackedLinear::from_q4_0(a, 4, 64, bias[..4].to_vec()),
            PackedLinear::from_q4_0(b, 4, 64, bias[4..].to_vec()),
        ]);
        let (mut acts, mut y1, mut y2) = (whole.acts(), Vec::new(), Vec::new());
        whole.quantize(&x, &mut acts);
        whole.forward(&acts, &mut y1, Epilogue::None);
        parts.forward(&acts, &mut y2, Epilogue::None);
        assert_eq!(y1, y2);
    }

    #[test]
    fn fast_math_matches_libm() {
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
        for i in -8000..=8000 {
            let x = i as f32 / 100.0;
            let (e, want) = (exp(x), libm::expf(x));
            assert!(
                (e - want).abs() <= 4.0 * f32::EPSILON * want,
                "exp({x}) {e} vs {want}"
            );
            let (f, want) = (erf(x / 10.0), libm::erff(x / 10.0));
            assert!((f - want).abs() <= 5e-7, "erf({}) {f} vs {want}", x / 10.0);
            let (g, want) = (
                gelu(x / 10.0),
                0.5 * x / 10.0 * (1.0 + libm::erff(x / 10.0 * std::f32::consts::FRAC_1_SQRT_2)),
            );
            assert!(
                (g - want).abs() <= 2e-6 * want.abs().max(1.0),
                "gelu {g} vs {want}"
            );
        }
        assert_eq!(round_small(2.5), 2.0);
        assert_eq!(round_small(-3.5), -4.0);
        assert_eq!(round_small(126.6), 127.0);
        for v in [
            -127.0f32, -126.5, -3.5, -0.4, 0.0, 0.5, 1.5, 2.5, 126.6, 127.0,
        ] {
            assert_eq!(round_to_i8(v), round_small(v) as i8, "{v}");
        }
    }
}
