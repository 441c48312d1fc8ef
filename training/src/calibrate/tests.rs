//! Unit tests of the top-1 temperature refinement and the ECE.

use super::fit::{refine_top1_temperatures, ECE_BINS};
use super::*;

#[test]
fn top1_refinement_sharpens_an_under_confident_level() {
    // one level of ten classes; the top-1 always carries 0.3 but is right 60 % of the time
    let rows: Vec<(String, String, Option<String>)> = (0..10)
        .map(|i| (format!("c{i}"), format!("class {i}"), None))
        .collect();
    let tree = Tree::from_rows("t", vec!["class".into()], &rows, false).unwrap();
    let leaves = tree.level(0).to_vec();
    let (mut raw, mut gold) = (Vec::new(), Vec::new());
    for n in 0..1000usize {
        let g = n % 10;
        let top = if n % 5 < 3 { g } else { (g + 1 + n % 7) % 10 };
        let mut p = vec![0.7f32 / 9.0; 10];
        p[top] = 0.3;
        raw.push(vec![p]);
        gold.push(leaves[g]);
    }
    let top1_ece = |t: f32| {
        let pairs: Vec<(f32, bool)> = raw
            .iter()
            .zip(&gold)
            .map(|(r, &g)| {
                let q = crate::classifier::temper(&r[0], t);
                let (best, c) = q
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap();
                (*c, leaves[best] == g)
            })
            .collect();
        ece(&confidence_bins(&pairs, ECE_BINS)).unwrap()
    };
    assert!(top1_ece(1.0) > 0.25, "the fixture is under-confident");
    let mut temps = vec![1.0f32];
    refine_top1_temperatures(&tree, &raw, &gold, &mut temps);
    // confidence 0.6 needs (0.3 / 0.078)^(1/T) = 13.5, i.e. T ≈ 0.52
    assert!((0.45..0.6).contains(&temps[0]), "{temps:?}");
    assert!(top1_ece(temps[0]) < 0.05, "{}", top1_ece(temps[0]));
}

#[test]
fn ece_of_bins() {
    let pairs = [(0.95, true), (0.95, false), (0.15, false)];
    let b = confidence_bins(&pairs, 10);
    assert_eq!(b[9].1, 1);
    assert_eq!(b[9].2, 2);
    // (2/3)·|0.5 − 0.95| + (1/3)·|0 − 0.15|
    let e = ece(&b).unwrap();
    assert!((e - (2.0 / 3.0 * 0.45 + 0.15 / 3.0)).abs() < 1e-6, "{e}");
    assert!(ece(&confidence_bins(&[], 10)).is_none());
}
