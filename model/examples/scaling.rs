//! Per-text forward cost at several batch sizes (diagnostics).
use std::time::Instant;
use touxiang_model::{test_model_dir, E5Model, Kind, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4)?;
    let ids = m.tokenize(&["补充流动资金，采购热轧钢卷"], Kind::Query)?[0].clone();
    for b in [1usize, 4, 16, 64, 256] {
        let batch = vec![ids.clone(); b];
        m.encoder().forward(&batch)?;
        let t = Instant::now();
        let reps = (256 / b).max(1);
        for _ in 0..reps {
            m.encoder().forward(&batch)?;
        }
        let per = t.elapsed().as_secs_f64() / (reps * b) as f64 * 1e3;
        println!("batch {b:4}: {per:.2} ms/text");
    }
    Ok(())
}
