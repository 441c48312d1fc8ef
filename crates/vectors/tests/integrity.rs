//! A damaged `vectors.sqlite` (or outbox) is refused instead of becoming an empty store.

use std::path::Path;

use touxiang_vectors::conformance::{point, unit_vector};
use touxiang_vectors::{
    EmbeddedConfig, EmbeddedStore, Filter, ResilientConfig, ResilientStore, VectorError,
    VectorStore,
};

const DIM: usize = 384;

fn open(dir: &Path) -> touxiang_vectors::Result<EmbeddedStore> {
    EmbeddedStore::open(EmbeddedConfig::new(dir, DIM))
}

/// A store of 300 points (about 0.5 MB), closed.
async fn store_with_data(dir: &Path) {
    let s = open(dir).unwrap();
    let points = (0..300)
        .map(|i| point(&format!("p{i}"), unit_vector(DIM, i), "6291", "seed"))
        .collect();
    s.upsert(points).await.unwrap();
}

fn assert_refused(e: VectorError, file: &Path) -> String {
    assert!(
        matches!(e, VectorError::Store(ref s) if s.is_damaged()),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("touxiang restore"), "{msg}");
    assert!(msg.contains("move it away"), "{msg}");
    msg
}

#[tokio::test]
async fn an_empty_vector_store_is_refused() {
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path()).await;
    let file = d.path().join("vectors.sqlite");
    std::fs::File::create(&file).unwrap(); // truncated to 0 bytes
    let msg = assert_refused(open(d.path()).err().expect("refused"), &file);
    assert!(msg.contains("0 bytes"), "{msg}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left as it was");
}

#[tokio::test]
async fn a_half_truncated_vector_store_is_refused() {
    let d = tempfile::tempdir().unwrap();
    store_with_data(d.path()).await;
    let file = d.path().join("vectors.sqlite");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused(open(d.path()).err().expect("refused"), &file);
}

#[tokio::test]
async fn a_missing_vector_store_is_created_fresh_and_reopens_with_its_points() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("vectors.sqlite");
    assert!(!file.exists());
    assert!(open(d.path()).unwrap().is_empty());
    store_with_data(d.path()).await;
    let s = open(d.path()).unwrap();
    assert_eq!(s.count(&Filter::all()).await.unwrap(), 300);
}

#[tokio::test]
async fn an_empty_outbox_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("outbox");
    let cfg = ResilientConfig::new(&out, DIM);
    drop(ResilientStore::open(open(d.path()).unwrap(), cfg.clone()).unwrap());
    let file = out.join("outbox.sqlite");
    std::fs::File::create(&file).unwrap();
    let e = ResilientStore::open(open(d.path()).unwrap(), cfg)
        .err()
        .expect("refused");
    assert_refused(e, &file);
}
