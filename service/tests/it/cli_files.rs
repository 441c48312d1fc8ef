//! What the binary leaves on disk: its files are readable by their owner only, and reading
//! commands refuse a data dir that holds no data instead of creating one.

use std::process::Command;

#[cfg(unix)]
#[test]
fn data_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args([
            "keys",
            "create",
            "--role",
            "analyst",
            "--name",
            "ops",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data dir");
    let mut files = 0;
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            files += 1;
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    assert!(files > 0, "the key store wrote files");
}

#[test]
fn export_labels_refuses_a_data_dir_without_a_review_store() {
    let d = tempfile::tempdir().unwrap();
    let typo = d.path().join("dta");
    let out = d.path().join("labels.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(["export-labels", "--data-dir"])
        .arg(&typo)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no review store"), "{err}");
    assert!(!typo.exists(), "nothing created");
    assert!(!out.exists());
}

#[test]
fn ingest_takes_only_the_portfolio_names_the_api_takes() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(["ingest", "--portfolio", "../../etc", "--data-dir"])
        .arg(d.path())
        .arg(d.path().join("loans.csv"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--portfolio") && err.contains("invalid portfolio name"),
        "{err}"
    );
}
