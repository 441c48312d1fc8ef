//! Formats: every input format to every output format gives the same rows.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use touxiang_batch::{read_output, run, BatchHooks, BatchOptions, Format};
use touxiang_testkit::KeywordLabeler;

use super::dir;

fn write_input(path: &Path, format: Format, rows: &[(String, String)]) {
    match format {
        Format::Csv => {
            let v: Vec<(&str, &str, &str, &str)> = rows
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str(), "", ""))
                .collect();
            touxiang_testkit::write_csv(path, &v);
        }
        Format::Jsonl => {
            let mut f = std::fs::File::create(path).unwrap();
            for (a, b) in rows {
                writeln!(
                    f,
                    "{}",
                    serde_json::json!({"loan_id": a, "purpose_text": b, "other": 1})
                )
                .unwrap();
            }
        }
        Format::Xlsx => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            ws.write_string(0, 0, "note").unwrap();
            ws.write_string(0, 1, "purpose_text").unwrap();
            ws.write_string(0, 2, "loan_id").unwrap();
            for (i, (a, b)) in rows.iter().enumerate() {
                ws.write_string(i as u32 + 1, 1, b).unwrap();
                ws.write_string(i as u32 + 1, 2, a).unwrap();
            }
            wb.save(path).unwrap();
        }
        Format::Parquet => {
            use parquet::data_type::{ByteArray, ByteArrayType};
            let schema = Arc::new(
                parquet::schema::parser::parse_message_type(
                    "message m { REQUIRED BYTE_ARRAY loan_id (UTF8); OPTIONAL BYTE_ARRAY purpose_text (UTF8); }",
                )
                .unwrap(),
            );
            let f = std::fs::File::create(path).unwrap();
            let mut w = parquet::file::writer::SerializedFileWriter::new(
                f,
                schema,
                Arc::new(parquet::file::properties::WriterProperties::builder().build()),
            )
            .unwrap();
            // Two row groups.
            for part in rows.chunks(rows.len().div_ceil(2)) {
                let mut rg = w.next_row_group().unwrap();
                let mut ci = 0;
                while let Some(mut col) = rg.next_column().unwrap() {
                    let vals: Vec<ByteArray> = part
                        .iter()
                        .map(|(a, b)| {
                            ByteArray::from(if ci == 0 { a.as_str() } else { b.as_str() })
                        })
                        .collect();
                    let defs = vec![1i16; part.len()];
                    col.typed::<ByteArrayType>()
                        .write_batch(&vals, (ci == 1).then_some(&defs[..]), None)
                        .unwrap();
                    col.close().unwrap();
                    ci += 1;
                }
                rg.close().unwrap();
            }
            w.close().unwrap();
        }
    }
}

#[test]
fn all_four_formats_round_trip() {
    let d = dir();
    let mut rows = touxiang_testkit::sample_rows(120);
    rows[7].1 = "  ".into(); // an error row travels through every format too
    let cache = d.path().join("cache.sqlite");
    let mut reference = None;
    for inf in Format::ALL {
        let input = d.path().join(format!("in.{}", inf.as_str()));
        write_input(&input, inf, &rows);
        for outf in Format::ALL {
            let out = d
                .path()
                .join(format!("out-{}.{}", inf.as_str(), outf.as_str()));
            let mut opts = BatchOptions::new(&input, &out);
            opts.cache_path = Some(cache.clone());
            opts.chunk_size = 32;
            let s = run(&opts, &KeywordLabeler::new(), &BatchHooks::default()).unwrap();
            assert_eq!(s.counters.rows, 120, "{inf:?} -> {outf:?}");
            let got = read_output(&out, outf).unwrap();
            assert!(!opts.part_path().exists() && !opts.checkpoint_path().exists());
            match &reference {
                None => {
                    assert_eq!(got.len(), 120);
                    assert!(got[7].error.is_some());
                    assert_eq!(got[0].id, "L00000");
                    reference = Some(got);
                }
                Some(r) => assert_eq!(&got, r, "{inf:?} -> {outf:?}"),
            }
        }
    }
}
