//! Unit tests of the layout, every instruction-set path against a float reference, and the fast
//! math.

use super::quant::{round_small, round_to_i8};
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

#[test]
fn extreme_values_do_not_overflow_the_16_bit_sums() {
    // Every nibble 15 and every activation ±127: the largest pair sums the AVX2 tile adds as
    // 16-bit integers (eight vectors of a group: 8 · 3 810 = 30 480 < 2¹⁵).
    let (nout, nin) = (7, 1536);
    let mut raw = Vec::new();
    for _ in 0..nout * nin / QK {
        raw.extend(half::f16::from_f32(0.01).to_le_bytes());
        raw.extend([0xFFu8; 16]);
    }
    let bias = vec![0.0; nout];
    for sign in [1.0f32, -1.0] {
        let x: Vec<f32> = (0..5 * nin).map(|_| sign * 3.0).collect();
        let want = reference(&raw, nout, nin, &bias, &x);
        let lin = PackedLinear::from_q4_0(&raw, nout, nin, bias.clone());
        let mut acts = lin.acts();
        lin.quantize(&x, &mut acts);
        let mut isas = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        if Isa::best() != Isa::Scalar {
            isas.push(Isa::Avx2);
        }
        for isa in isas {
            let mut y = Vec::new();
            lin.forward_with(isa, &acts, &mut y, Epilogue::None);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                    "{isa:?}: {a} vs {b}"
                );
            }
        }
    }
}
