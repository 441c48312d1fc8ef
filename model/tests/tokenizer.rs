//! The compact Unigram model gives exactly the token ids of `tokenizers`' own `Unigram` on the
//! same `tokenizer.json`, with truncation, special tokens and unknown characters.

use touxiang_model::{fetch, test_model_dir, tokenize};

/// Texts from the shared notes file when it is there (thousands of real items, definitions and
/// Lending Club titles), plus edge cases that are always checked.
fn texts() -> Vec<String> {
    let mut t: Vec<String> = [
        "",
        " ",
        "补充流动资金，采购热轧钢卷",
        "用於燒烤店裝修及購買冷櫃",
        "Ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ１２３",
        "purchase of hot-rolled steel coils for resale",
        "emoji 🚜🌾 and rare 𠀀𠀁 chars ꙮ",
        "literal <mask> and <s> tokens </s>",
        "   leading and trailing spaces   ",
        "tab\tand\nnewline",
        "ÀÉÎõü ñ ç ß ﬁ ① ㈱ ㎏",
        "ـــ عربى русский ελληνικά हिन्दी ไทย 한국어 日本語のテキスト",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    t.push("资金周转".repeat(400)); // truncated at 512
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/datasets");
    if let Ok(notes) = std::fs::read_to_string(format!("{shared}/gbt4754-2017/notes.jsonl")) {
        for line in notes.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("notes line");
            for key in ["definition", "includes", "excludes"] {
                for item in v[key].as_array().into_iter().flatten() {
                    let s = item
                        .as_str()
                        .or_else(|| item[0].as_str())
                        .or_else(|| item["text"].as_str());
                    t.extend(s.map(str::to_string));
                }
            }
        }
    }
    if let Ok(loans) = std::fs::read_to_string(format!("{shared}/lendingclub-2007-2011/loans.csv"))
    {
        t.extend(
            loans
                .lines()
                .skip(1)
                .step_by(7)
                .take(4000)
                .map(str::to_string),
        );
    }
    t
}

#[test]
fn compact_unigram_matches_tokenizers_unigram() {
    let files = fetch::ensure(&test_model_dir()).expect("model");
    let ours = tokenize::load(&files.tokenizer).expect("compact");
    let reference = tokenizers::Tokenizer::from_file(&files.tokenizer).expect("reference");
    let texts = texts();
    let mut checked = 0;
    for text in &texts {
        for prefixed in [format!("query: {text}"), text.clone()] {
            let a = ours.encode(prefixed.as_str(), true).expect("ours");
            let b = reference
                .encode(prefixed.as_str(), true)
                .expect("reference");
            assert_eq!(a.get_ids(), b.get_ids(), "ids differ for {prefixed:?}");
            assert_eq!(
                a.get_offsets(),
                b.get_offsets(),
                "offsets differ for {prefixed:?}"
            );
            checked += 1;
        }
    }
    println!("{checked} encodings identical");
    assert!(checked >= 26);
    let mask = ours.encode("<mask>", true).unwrap();
    assert_eq!(
        mask.get_ids(),
        reference.encode("<mask>", true).unwrap().get_ids()
    );
    assert_eq!(
        ours.decode(&[0, 6, 1], true).ok(),
        reference.decode(&[0, 6, 1], true).ok()
    );
}
