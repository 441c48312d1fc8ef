//! The text pipeline every purpose line goes through (normalise → mask → segment → keywords)
//! never panics and keeps its invariants on arbitrary input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static SEG: OnceLock<touxiang_text::Segmenter> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let n = touxiang_text::normalize(&text);
    // normalising is idempotent: the service normalises texts that may already be normalised
    assert_eq!(
        touxiang_text::normalize(&n),
        n,
        "normalize is not idempotent"
    );
    let m = touxiang_text::mask(&n);
    let seg = SEG.get_or_init(touxiang_text::Segmenter::default);
    for w in seg.cut(&m) {
        assert!(!w.is_empty(), "empty token");
    }
    for k in seg.keywords(&n, 8) {
        assert!(n.contains(k.as_str()), "keyword {k:?} not in the text");
    }
});
