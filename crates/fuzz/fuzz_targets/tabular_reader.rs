//! The tabular readers (`touxiang-tabular`, shared by batch and by loan, payment and relation
//! ingest; CSV, JSONL, XLSX here) never panic on arbitrary bytes: every problem is a row error
//! or a file error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use touxiang_portfolio::ingest::read::open_bytes;
use touxiang_portfolio::InputFormat;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let format = match sel % 3 {
        0 => InputFormat::Csv,
        1 => InputFormat::Jsonl,
        _ => InputFormat::Xlsx,
    };
    let Ok(mut src) = open_bytes(bytes.to_vec(), format, None) else {
        return;
    };
    let width = src.headers().len();
    let mut buf = Vec::new();
    let mut extra = Vec::new();
    for _ in 0..10_000 {
        match src.next_row(&mut buf, &mut extra) {
            Ok(Some(Ok(_))) => {
                assert!(buf.len() >= width || width == 0 || format == InputFormat::Jsonl)
            }
            Ok(Some(Err(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
