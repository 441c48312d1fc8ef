//! The E5S1 reader rejects damaged files with a clear error instead of panicking.
use touxiang_model::e5s1::E5s1;
use touxiang_model::ModelError;

#[test]
fn rejects_bad_magic_and_truncation() {
    assert!(
        matches!(E5s1::parse(b"GGUF\0\0\0\0"), Err(ModelError::Format(m)) if m.contains("magic"))
    );
    let mut head = b"E5S1".to_vec();
    head.extend_from_slice(&1u32.to_le_bytes());
    head.extend_from_slice(&384i32.to_le_bytes());
    let e = E5s1::parse(&head).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn verify_dir_reports_missing_and_corrupt_files() {
    let dir = std::env::temp_dir().join(format!("touxiang-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = touxiang_model::fetch::verify_dir(&dir).unwrap_err();
    assert!(matches!(e, ModelError::Missing(_)), "{e}");
    std::fs::write(dir.join("e5-small-q4.bin"), b"not the model").unwrap();
    let e = touxiang_model::fetch::verify_dir(&dir).unwrap_err();
    assert!(matches!(e, ModelError::Checksum { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
