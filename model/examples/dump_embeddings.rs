//! Embed every line of a text file; write raw little-endian f32 rows (384 per text) to OUT.
//! `cargo run --release -p touxiang-model --example dump_embeddings -- IN.txt OUT.f32`
use std::io::Write;
use touxiang_model::{test_model_dir, E5Model, Kind, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&a[1])?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let m = E5Model::ensure_and_load(&test_model_dir(), Precision::Q4)?;
    let t = std::time::Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a[2])?);
    for chunk in lines.chunks(512) {
        for v in m.embed_texts(chunk, Kind::Query)? {
            for x in v {
                out.write_all(&x.to_le_bytes())?;
            }
        }
    }
    out.flush()?;
    eprintln!("{} texts in {:.1}s", lines.len(), t.elapsed().as_secs_f64());
    Ok(())
}
