//! [`PackedLinear`]: building from stored Q4_0 blocks, quantizing activations, and the
//! tiled, parallel matrix multiply (the scalar tile here, the SIMD tiles in `x86`).

use rayon::prelude::*;

use super::quant::quantize_row;
#[cfg(target_arch = "x86_64")]
use super::x86;
use super::{
    gelu_slice, Epilogue, Isa, Layout, PackedLinear, QuantActs, LANES, Q4_0_BYTES, QK, TILE_ROWS,
    TILE_TOKENS,
};

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
        if tokens >= 8 {
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
        self.matmul(isa, acts, y, ep);
    }

    /// `y = epilogue(acts · Wᵀ + bias)`; each parallel chunk applies the epilogue to its own
    /// rows (a GELU over a whole `[16 tokens][1536]` output after the multiply ran on one thread
    /// while the other waited).
    fn matmul(&self, isa: Isa, acts: &QuantActs, y: &mut Vec<f32>, ep: Epilogue) {
        let (t, nout) = (acts.tokens, self.nout);
        // Every element is written below: no need to clear old contents.
        y.resize(t * nout, 0.0);
        if t == 0 {
            return;
        }
        let (tile_rows, tile_tokens) = isa.tile_shape();
        let tiles = nout.div_ceil(tile_rows);
        // Enough chunks to balance 2+ threads, few enough to keep per-task overhead small.
        let per_chunk = tiles
            .div_ceil(rayon::current_num_threads().max(1) * 4)
            .max(1);
        let out = SyncPtr(y.as_mut_ptr());
        (0..tiles.div_ceil(per_chunk))
            .into_par_iter()
            .for_each(|c| {
                let r0 = c * per_chunk * tile_rows;
                let r1 = ((c + 1) * per_chunk * tile_rows).min(nout);
                // Token blocks keep the activations of one block hot while the chunk's weight rows
                // stream past them.
                const TOKEN_BLOCK: usize = 96;
                let mut t0 = 0;
                while t0 < t {
                    let t1 = (t0 + TOKEN_BLOCK).min(t);
                    let mut r = r0;
                    while r < r1 {
                        let nr = (r1 - r).min(tile_rows);
                        let mut tt = t0;
                        while tt < t1 {
                            let nt = (t1 - tt).min(tile_tokens);
                            // SAFETY: each (row, token) output is written by exactly one tile, and
                            // chunks cover disjoint row ranges.
                            unsafe { self.tile(isa, acts, r, nr, tt, nt, out) };
                            tt += nt;
                        }
                        r += nr;
                    }
                    t0 = t1;
                }
                if ep == Epilogue::Gelu {
                    for tt in 0..t {
                        // SAFETY: rows r0..r1 of every token belong to this chunk alone, and
                        // every tile above has finished writing them.
                        let row = unsafe {
                            std::slice::from_raw_parts_mut(out.0.add(tt * nout + r0), r1 - r0)
                        };
                        gelu_slice(row);
                    }
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
