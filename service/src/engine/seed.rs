//! Seeding the exemplar store with an artifact's training exemplars (and its progress).

use std::collections::HashMap;

use chrono::Utc;
use touxiang_model::{E5Model, Embedder, Kind};
use touxiang_vectors::{point_id, Filter, Payload, Point, VectorStore};

use super::{encoder_text, read_exemplar_lines, ExemplarLine, TaxonomyModel};

/// Progress of embedding an artifact's exemplars into the store: `total` is 0 until seeding
/// starts (and stays 0 when the store already held them).
#[derive(Debug, Default)]
pub struct SeedProgress {
    pub seeded: std::sync::atomic::AtomicUsize,
    pub total: std::sync::atomic::AtomicUsize,
}

impl SeedProgress {
    /// (seeded, total)
    pub fn get(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.seeded.load(SeqCst), self.total.load(SeqCst))
    }
}

/// Store ids of exemplars given as (source, text, code), in order; `None` for a line that
/// repeats an earlier one exactly. A text labeled with several codes (506 of the shipped GB/T
/// exemplars) keeps one point per code: the first under the id of its text (as reviewed labels
/// and stores seeded before this have it), the others under text + code. With one id per text,
/// the store held fewer points than the artifact has lines, so every restart took seeding for
/// unfinished and embedded all exemplars again.
pub fn exemplar_ids<'a>(
    taxonomy: &str,
    lines: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<Option<String>> {
    let mut first: HashMap<(&str, &str), &str> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    lines
        .map(|(source, text, code)| {
            if !seen.insert((source, text, code)) {
                return None;
            }
            Some(match first.entry((source, text)) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(code);
                    point_id(taxonomy, source, text)
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    point_id(taxonomy, source, &format!("{text}\u{0}{code}"))
                }
            })
        })
        .collect()
}

/// A training exemplar as a store point under `id` (from [`exemplar_ids`]).
fn seed_point(
    id: String,
    taxonomy: &str,
    text: &str,
    code: &str,
    source: &str,
    vector: Vec<f32>,
    model_version: &str,
) -> Point {
    Point {
        id,
        vector,
        payload: Payload {
            text: text.to_string(),
            code: code.to_string(),
            taxonomy: taxonomy.to_string(),
            source: source.to_string(),
            reviewer: None,
            created_at: Utc::now(),
            model_version: model_version.to_string(),
        },
    }
}

/// Make sure the store holds the training exemplars of `m` (first start, or after retraining).
pub async fn seed_store(
    store: &dyn VectorStore,
    m: &TaxonomyModel,
    model_version: &str,
) -> anyhow::Result<usize> {
    let Some(ix) = &m.exemplars else { return Ok(0) };
    let tax = m.taxonomy.id().to_string();
    let filter = Filter {
        taxonomy: Some(tax.clone()),
        model_version: Some(model_version.to_string()),
        sources: Some(
            ix.sources
                .iter()
                .filter(|s| s.as_str() != "reviewed")
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
        code_prefix: None,
    };
    let ids = exemplar_ids(
        &tax,
        (0..ix.len()).map(|i| {
            (
                ix.sources[i].as_str(),
                ix.texts[i].as_str(),
                ix.codes[i].as_str(),
            )
        }),
    );
    let have = store.count(&filter).await?;
    if have as usize >= ids.iter().flatten().count() {
        return Ok(0);
    }
    let rows = ix.matrix().to_vec2::<f32>()?;
    let mut n = 0;
    let todo: Vec<(usize, String)> = ids
        .into_iter()
        .enumerate()
        .filter_map(|(i, id)| id.map(|id| (i, id)))
        .collect();
    for chunk in todo.chunks(2048) {
        let points = chunk
            .iter()
            .map(|(i, id)| {
                let i = *i;
                seed_point(
                    id.clone(),
                    &tax,
                    &ix.texts[i],
                    &ix.codes[i],
                    &ix.sources[i],
                    rows[i].clone(),
                    model_version,
                )
            })
            .collect::<Vec<_>>();
        n += points.len();
        store.upsert(points).await?;
    }
    tracing::info!(taxonomy = %tax, exemplars = n, "exemplar store seeded");
    Ok(n)
}

/// Embed `items` at background priority, in small jobs (a request waits behind at most one
/// of them), and upsert the points `point` makes of each item and its vector. Returns how many
/// points were written. Used for first-start exemplar seeding and for replaying reviewed labels.
pub async fn embed_and_upsert_background<T>(
    store: &dyn VectorStore,
    model: &E5Model,
    queue: &crate::queue::EmbedQueue,
    items: &[T],
    text: impl Fn(&T) -> &str,
    point: impl Fn(&T, Vec<f32>) -> Point,
    progress: impl Fn(usize),
) -> anyhow::Result<usize> {
    let mut written = 0;
    for chunk in items.chunks(8) {
        let texts: Vec<String> = chunk.iter().map(|t| encoder_text(text(t))).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids = model.tokenize(&refs, Kind::Query)?;
        let vectors = queue
            .embed_background(ids)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let points: Vec<Point> = chunk
            .iter()
            .zip(vectors)
            .map(|(t, v)| point(t, v))
            .collect();
        written += points.len();
        store.upsert(points).await?;
        progress(written);
    }
    Ok(written)
}

/// Artifacts committed to the repository carry the exemplar texts (`exemplars.jsonl`) but not
/// their vectors (too large to commit). Embed those once, in the background after start, and
/// upsert them; the store persists them, so later starts skip this. Neighbours fill in as it
/// runs. Returns how many exemplars were added.
pub async fn seed_store_from_texts(
    store: &dyn VectorStore,
    m: &TaxonomyModel,
    model: &E5Model,
    queue: &crate::queue::EmbedQueue,
) -> anyhow::Result<usize> {
    let ready = |m: &TaxonomyModel| {
        m.neighbors_ready
            .store(true, std::sync::atomic::Ordering::SeqCst)
    };
    if m.exemplars.is_some() {
        ready(m);
        return Ok(0);
    }
    let Some(lines) = read_exemplar_lines(&m.artifact_dir)? else {
        ready(m);
        return Ok(0);
    };
    let tax = m.taxonomy.id().to_string();
    let version = Embedder::version(model);
    let ids = exemplar_ids(
        &tax,
        lines
            .iter()
            .map(|l| (l.source.as_str(), l.text.as_str(), l.code.as_str())),
    );
    let todo: Vec<(&ExemplarLine, String)> = lines
        .iter()
        .zip(ids)
        .filter_map(|(l, id)| id.map(|id| (l, id)))
        .collect();
    let mut sources: Vec<String> = todo.iter().map(|(l, _)| l.source.clone()).collect();
    sources.sort();
    sources.dedup();
    let filter = Filter {
        taxonomy: Some(tax.clone()),
        model_version: Some(version.clone()),
        sources: Some(sources),
        code_prefix: None,
    };
    if store.count(&filter).await? as usize >= todo.len() {
        for a in [&m.seeding.seeded, &m.seeding.total] {
            a.store(todo.len(), std::sync::atomic::Ordering::SeqCst);
        }
        ready(m);
        return Ok(0);
    }
    // points already in the store with this encoder's vectors (a first start interrupted, or
    // an artifact that adds lines to the previous one's) are not embedded again; a store that
    // cannot tell makes this embed everything, as before
    let ids: Vec<String> = todo.iter().map(|(_, id)| id.clone()).collect();
    let held = store
        .contains(&ids, &filter)
        .await
        .unwrap_or_else(|_| vec![false; ids.len()]);
    let total = todo.len();
    let todo: Vec<(&ExemplarLine, String)> = todo
        .into_iter()
        .zip(held)
        .filter_map(|(t, held)| (!held).then_some(t))
        .collect();
    let already = total - todo.len();
    tracing::info!(taxonomy = %tax, exemplars = total, already, to_embed = todo.len(), "embedding shipped exemplars into the store (once per encoder and exemplar line); /readyz shows the progress");
    m.seeding
        .total
        .store(total, std::sync::atomic::Ordering::SeqCst);
    metrics::gauge!("touxiang_exemplars_total", "taxonomy" => tax.clone()).set(total as f64);
    let step = total.div_ceil(10).max(1);
    let progress = |done: usize| {
        let before = m
            .seeding
            .seeded
            .swap(done, std::sync::atomic::Ordering::SeqCst);
        metrics::gauge!("touxiang_exemplars_seeded", "taxonomy" => tax.clone()).set(done as f64);
        if done / step > before / step || done == total {
            tracing::info!(taxonomy = %tax, seeded = done, total, "seeding the exemplar store: {} %", 100 * done / total.max(1));
        }
    };
    progress(already);
    let added = embed_and_upsert_background(
        store,
        model,
        queue,
        &todo,
        |(l, _)| &l.text,
        |(l, id), v| seed_point(id.clone(), &tax, &l.text, &l.code, &l.source, v, &version),
        |done| progress(already + done),
    )
    .await?;
    ready(m);
    tracing::info!(taxonomy = %tax, exemplars = added, "shipped exemplars embedded");
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::exemplar_ids;

    #[test]
    fn a_text_with_two_codes_keeps_both_points_and_repeats_are_dropped() {
        let lines = [
            ("seed", "钢材", "5164"),
            ("seed", "钢材", "3120"),
            ("seed", "钢材", "5164"),
            ("role", "钢材", "5164"),
            ("seed", "水泥", "3011"),
        ];
        let ids = exemplar_ids("gbt", lines.into_iter());
        assert_eq!(ids.len(), 5);
        assert!(ids[2].is_none(), "an exact repeat adds no point");
        let kept: std::collections::HashSet<_> = ids.iter().flatten().collect();
        assert_eq!(
            kept.len(),
            4,
            "every distinct (source, text, code) has its own id"
        );
        // the first code of a text keeps the id reviewed labels and older stores use
        assert_eq!(
            ids[0].as_deref(),
            Some(touxiang_vectors::point_id("gbt", "seed", "钢材").as_str())
        );
    }
}
