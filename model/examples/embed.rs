//! `cargo run -p touxiang-model --example embed -- TEXT...`: embed texts with both precisions.
use touxiang_model::{test_model_dir, E5Model, Kind, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let texts: Vec<String> = std::env::args().skip(1).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let q = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4)?;
    eprintln!("load q4 {:?}", t.elapsed());
    let f = E5Model::ensure_and_load(&test_model_dir(), Precision::F32)?;
    let a = q.embed_texts(&texts, Kind::Query)?;
    let b = f.embed_texts(&texts, Kind::Query)?;
    for (i, t) in texts.iter().enumerate() {
        let cos: f32 = a[i].iter().zip(&b[i]).map(|(x, y)| x * y).sum();
        println!(
            "{t}\tids={:?}\tq4[..4]={:?}\tcos(q4,f32)={cos:.5}",
            q.tokenize(&[t], Kind::Query)?[0],
            &a[i][..4]
        );
    }
    Ok(())
}
