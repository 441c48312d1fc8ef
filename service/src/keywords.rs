//! Keywords of a purpose text: one function for `POST /v1/classify` and the review items
//! (claim, item view), so a reviewer sees the keywords classify returned for the same text.
//!
//! The segmenter (jieba with the taxonomy and finance dictionaries) costs about half a second
//! and some memory to build, so the process builds one ([`shared_segmenter`]) and the engine,
//! the review routes and the tests share it.

use std::sync::{Arc, OnceLock};

use touxiang_text::Segmenter;

use crate::state::AppState;

/// How many keywords a text gets.
pub const KEYWORDS: usize = 5;

/// The process's segmenter (built on first use; blocking, about half a second).
pub fn shared_segmenter() -> Arc<Segmenter> {
    static SEG: OnceLock<Arc<Segmenter>> = OnceLock::new();
    SEG.get_or_init(|| Arc::new(Segmenter::default())).clone()
}

/// The engine's segmenter once it is loaded (cheap); `None` before. Pass it to
/// [`keywords_or_shared`] on the blocking pool.
pub fn engine_segmenter(s: &AppState) -> Option<Arc<Segmenter>> {
    s.engine().ok().map(|e| e.segmenter.clone())
}

/// [`keywords`] with `segmenter`, or with the shared one (same dictionaries) when there is none
/// yet: that may build it, so call this from blocking code.
pub fn keywords_or_shared(segmenter: Option<Arc<Segmenter>>, text: &str) -> Vec<String> {
    keywords(&segmenter.unwrap_or_else(shared_segmenter), text)
}

/// TF-IDF keywords of `text` (normalised: full-width, traditional characters), loan boilerplate
/// left out.
pub fn keywords(segmenter: &Segmenter, text: &str) -> Vec<String> {
    segmenter.keywords(&touxiang_text::normalize(text), KEYWORDS)
}
