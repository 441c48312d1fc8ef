//! A label acknowledged by a process survives `kill -9` of that process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use touxiang_review::{ReviewConfig, ReviewStore};

#[test]
fn acknowledged_labels_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("review.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_review-durability-child"))
        .arg(&db)
        .arg("1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("ACK"), "unexpected line {line:?}");
        let id = parts.next().unwrap().to_string();
        let code = parts.next().unwrap().to_string();
        acked.push((id, code));
        if acked.len() >= 60 {
            break;
        }
    }
    // SIGKILL in the middle of the stream (the child keeps labeling until it dies).
    child.kill().expect("kill -9");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "child must have been killed, got {status:?}"
    );
    assert!(
        acked.len() >= 60,
        "child stopped early after {} ACKs",
        acked.len()
    );

    let store = ReviewStore::open_file(&db, ReviewConfig::default()).unwrap();
    for (id, code) in &acked {
        let labels = store.labels(id).unwrap();
        assert!(
            labels
                .iter()
                .any(|l| &l.code == code && l.reviewer == "child"),
            "acknowledged label of {id} lost"
        );
    }
    let exported = store
        .labels_since(&touxiang_review::LabelFilter::default())
        .unwrap();
    assert!(exported.len() >= acked.len());
}
