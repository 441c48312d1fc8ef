//! Damaged stores stop the binary instead of being replaced by empty ones (issue 13, item 4):
//! `serve` and the key commands exit non-zero naming the file and the recovery step, and a lost
//! key store never turns into a new `admin.key`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use touxiang_auth::{ensure_admin, KeyStore, Role, ADMIN_KEY_FILE, AUTH_DB_FILE};

use crate::raw_http::free_addr;

/// `touxiang serve` on `data`; it must exit (not start listening) within a minute.
fn serve(data: &Path, insecure: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_touxiang"));
    cmd.args(["serve", "--addr", &free_addr(), "--data-dir"])
        .arg(data)
        .arg("--model-dir")
        .arg(touxiang_model::test_model_dir())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if insecure {
        cmd.arg("--insecure-no-auth");
    }
    let mut child = cmd.spawn().expect("spawn touxiang serve");
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            // exited: collect what it wrote (the status is kept by try_wait)
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running on a damaged data dir");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The run failed, and its error names `file` and the way back.
fn assert_refused(o: &Output, file: &Path) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "exit {:?}; stderr: {err}", o.status);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("touxiang restore"), "{err}");
    assert!(err.contains("move"), "{err}");
}

/// A data dir after a first start: admin.key and one more issued key; then auth.sqlite is
/// truncated to 0 bytes. Returns admin.key's contents.
fn keys_issued_then_key_store_emptied(data: &Path) -> Vec<u8> {
    ensure_admin(data).unwrap().expect("first start");
    KeyStore::open(data)
        .unwrap()
        .create(Role::Reviewer, "r1")
        .unwrap();
    std::fs::File::create(data.join(AUTH_DB_FILE)).unwrap();
    std::fs::read(data.join(ADMIN_KEY_FILE)).unwrap()
}

#[test]
fn keys_list_refuses_an_empty_key_store_next_to_admin_key() {
    let d = tempfile::tempdir().unwrap();
    let admin = keys_issued_then_key_store_emptied(d.path());
    let o = Command::new(env!("CARGO_BIN_EXE_touxiang"))
        .args(["keys", "list", "--data-dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_refused(&o, &d.path().join(AUTH_DB_FILE));
    assert_eq!(std::fs::read(d.path().join(ADMIN_KEY_FILE)).unwrap(), admin);
    assert_eq!(
        std::fs::metadata(d.path().join(AUTH_DB_FILE))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn serve_refuses_to_start_on_an_empty_key_store_and_keeps_admin_key() {
    let d = tempfile::tempdir().unwrap();
    let admin = keys_issued_then_key_store_emptied(d.path());
    let o = serve(d.path(), false);
    assert_refused(&o, &d.path().join(AUTH_DB_FILE));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("created an admin key"),
        "no new admin key"
    );
    assert_eq!(std::fs::read(d.path().join(ADMIN_KEY_FILE)).unwrap(), admin);
}

#[test]
fn serve_refuses_to_start_on_an_empty_review_store() {
    let d = tempfile::tempdir().unwrap();
    {
        let cfg = touxiang_review::ReviewConfig::default();
        let s = touxiang_review::ReviewStore::open(d.path(), cfg).unwrap();
        for i in 0..50 {
            let it = touxiang_review::NewItem::new("default", &format!("贷款 {i}"), "gbt", 0.5);
            s.enqueue(&it, chrono::Utc::now()).unwrap();
        }
    }
    let file = d.path().join(touxiang_review::REVIEW_DB_FILE);
    std::fs::File::create(&file).unwrap();
    let o = serve(d.path(), true);
    assert_refused(&o, &file);
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 bytes"));
}

#[test]
fn serve_refuses_to_start_on_a_half_truncated_portfolio_store() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("book.csv");
    let mut body =
        String::from("loan_id,purpose_text,amount,balance,overdue_days,region_code,as_of_date\n");
    for i in 0..3000 {
        body.push_str(&format!(
            "L{i},采购原材料补充流动资金 {i},{},{},0,110101,2025-03-31\n",
            2000 + i,
            1000 + i
        ));
    }
    std::fs::write(&csv, body).unwrap();
    let rep = touxiang_portfolio::PortfolioStore::open(d.path())
        .unwrap()
        .ingest_file(
            "book",
            &csv,
            &touxiang_portfolio::IngestOptions::default(),
            None,
        )
        .unwrap();
    assert_eq!(rep.accepted, 3000, "{:?}", rep.rejected);
    let file = d.path().join(touxiang_portfolio::store::STORE_FILE);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = serve(d.path(), true);
    assert_refused(&o, &file);
}

/// A batch review-key map at schema version 1 opens under the current code and keeps its rows.
#[test]
fn a_version_1_review_key_map_opens() {
    let schema = &touxiang::cmd_batch::REVIEW_KEYS_SCHEMA;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(touxiang::cmd_batch::REVIEW_KEYS_FILE);
    touxiang_sqlite::create_store_at_version(&p, schema, 1).unwrap();
    rusqlite::Connection::open(&p)
        .unwrap()
        .execute(
            "INSERT INTO review_keys (key, review_id) VALUES ('in.csv#1', 'rv-1')",
            [],
        )
        .unwrap();
    let c = touxiang_sqlite::open_store(&p, schema).unwrap();
    let id: String = c
        .query_row(
            "SELECT review_id FROM review_keys WHERE key = 'in.csv#1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(id, "rv-1");
    let version: i32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema.version());
}
