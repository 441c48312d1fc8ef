//! Portfolio benchmark: generate a synthetic Chinese book, ingest it, time a two-dimension
//! group-by with a filter.
//!
//! `cargo run --release -p touxiang-portfolio --example bench -- [loans] [months] [iterations]`
//! (defaults: 1 000 000 loans, 1 month, 50 iterations).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| -> usize {
        args.get(i)
            .map(|s| s.replace('_', "").parse().expect("a number"))
            .unwrap_or(d)
    };
    let (loans, months, iters) = (num(0, 1_000_000), num(1, 1), num(2, 50));
    match touxiang_portfolio::bench(loans, months, iters, None) {
        Ok(r) => println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("serialisable")
        ),
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
