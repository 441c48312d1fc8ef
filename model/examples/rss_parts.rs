//! Resident memory after each part of the model loads:
//! `cargo run --release -p touxiang-model --example rss_parts`.
use touxiang_model::{bench, e5s1, encoder::Encoder, test_model_dir, tokenize, Precision};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let d = test_model_dir();
    println!("start {:.0} MiB", bench::rss_mib());
    let tok = tokenize::load(&d.join("tokenizer.json"))?;
    println!("+ tokenizer (compact unigram) {:.0} MiB", bench::rss_mib());
    let bytes = std::fs::read(d.join("e5-small-q4.bin"))?;
    let enc = Encoder::load(&e5s1::E5s1::parse(&bytes)?, Precision::Q4)?;
    drop(bytes);
    println!("+ encoder (packed Q4) {:.0} MiB", bench::rss_mib());
    let reference = tokenizers::Tokenizer::from_file(d.join("tokenizer.json"))?;
    println!(
        "+ tokenizers' own Unigram, for comparison {:.0} MiB",
        bench::rss_mib()
    );
    std::hint::black_box((&tok, &enc, &reference));
    Ok(())
}
