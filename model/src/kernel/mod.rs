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

mod math;
mod matmul;
mod quant;
pub mod simd;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use math::{erf, exp, gelu, gelu_slice};

/// Values per quantization block (GGML `QK4_0` / `QK8_0`).
pub const QK: usize = 32;
/// Bytes of one stored Q4_0 block: f16 scale + 16 bytes of nibbles.
const Q4_0_BYTES: usize = 18;
/// 32-bit lanes per 256-bit register.
const LANES: usize = 8;
/// Most weight rows of a register tile (see [`Isa::tile_shape`]).
const TILE_ROWS: usize = 4;
/// Most tokens of a register tile.
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

    /// Register tile (weight rows × tokens) of this instruction set's matrix multiply.
    ///
    /// AVX2 has 16 vector registers: its tile keeps `rows·tokens` 16-bit sums, the tokens'
    /// activation vectors and one weight vector live in the inner loop. On the 2-core AMD EPYC
    /// (AVX2, no VNNI) of session 12, `embed_bench eval/bench/loans1000.txt 300` (16 tokens per
    /// text) measured one-text p50 / batch texts per s: 4×3 7.28 ms / 187, **3×3 7.04 / 202**,
    /// 4×2 7.41 / 184, 2×4 7.28 / 195, 2×3 7.30 / 192, 3×4 7.48 / 187, 4×4 7.44 / 180; the
    /// previous AVX2 tile (4×3, 32-bit sums per vector) 8.31 ms / 154. AVX-512 has 32 registers.
    pub(crate) fn tile_shape(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (3, 3),
            _ => (4, 3),
        }
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
