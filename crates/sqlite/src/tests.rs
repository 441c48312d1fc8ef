use super::*;

const SCHEMA: StoreSchema = StoreSchema {
    store: "test store",
    tables: &["items", "meta"],
    migrations: &[
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
          CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
          CREATE INDEX IF NOT EXISTS items_body ON items (body);",
    ],
};

/// A store with enough rows to span many pages, closed (WAL checkpointed into the file).
fn store_with_data(path: &Path) {
    let mut conn = open_store(path, &SCHEMA).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..2000 {
        tx.execute(
            "INSERT INTO items (body) VALUES (?1)",
            [format!("item {i} {}", "x".repeat(100))],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn.close().unwrap();
}

fn user_version(path: &Path) -> i32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn damaged_message(path: &Path) -> String {
    let e = open_store(path, &SCHEMA).unwrap_err();
    assert!(e.is_damaged(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("touxiang restore"), "{msg}");
    assert!(msg.contains("move it away"), "{msg}");
    msg
}

#[test]
fn a_missing_file_is_created_complete_and_stamped() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    let conn = open_store(&p, &SCHEMA).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    assert_eq!(user_version(&p), 1);
    // no temporary file is left behind
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".new-")), "{names:?}");
    // reopening keeps the data
    store_with_data(&p);
    let conn = open_store(&p, &SCHEMA).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2000);
}

#[test]
fn an_empty_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    store_with_data(&p);
    std::fs::File::create(&p).unwrap(); // truncates to 0 bytes
    let msg = damaged_message(&p);
    assert!(msg.contains("0 bytes"), "{msg}");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 0, "left untouched");
}

#[test]
fn a_half_truncated_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    store_with_data(&p);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    damaged_message(&p);
}

#[test]
fn garbage_in_the_middle_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    store_with_data(&p);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[mid..mid + 3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&p, bytes).unwrap();
    damaged_message(&p);
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    std::fs::write(&p, "this is not a database, it is a note".repeat(200)).unwrap();
    let msg = damaged_message(&p);
    assert!(msg.contains("not a database"), "{msg}");
}

#[test]
fn a_database_without_the_stores_tables_is_refused() {
    let d = tempfile::tempdir().unwrap();
    // header only, no tables (as left by a crash before the schema was written)
    let p = d.path().join("t.sqlite");
    let c = Connection::open(&p).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.close().unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() > 0);
    let msg = damaged_message(&p);
    assert!(msg.contains("no tables"), "{msg}");
    // some other database
    let q = d.path().join("other.sqlite");
    Connection::open(&q)
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x);")
        .unwrap();
    let msg = damaged_message(&q);
    assert!(msg.contains("none of the test store's tables"), "{msg}");
}

#[test]
fn a_stamped_store_missing_a_table_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    store_with_data(&p);
    Connection::open(&p)
        .unwrap()
        .execute_batch("DROP TABLE meta;")
        .unwrap();
    let msg = damaged_message(&p);
    assert!(msg.contains("meta"), "{msg}");
}

#[test]
fn an_unversioned_store_with_its_tables_is_accepted_and_stamped() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    // as written before versions were stamped: one of the tables, some data
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             INSERT INTO items (body) VALUES ('kept');",
        )
        .unwrap();
    assert_eq!(user_version(&p), 0);
    let conn = open_store(&p, &SCHEMA).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "kept");
    // the missing table was added
    conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
        .unwrap();
    drop(conn);
    assert_eq!(user_version(&p), 1);
}

#[test]
fn a_missing_file_with_a_leftover_write_ahead_log_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    let wal = d.path().join("t.sqlite-wal");
    let saved = d.path().join("saved-wal");
    {
        let conn = open_store(&p, &SCHEMA).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute("INSERT INTO items (body) VALUES ('in the log')", [])
            .unwrap();
        std::fs::copy(&wal, &saved).unwrap();
    }
    std::fs::remove_file(&p).unwrap();
    std::fs::rename(&saved, &wal).unwrap();
    let msg = damaged_message(&p);
    assert!(msg.contains("t.sqlite-wal"), "{msg}");
    assert!(!p.exists(), "no new store was created over the log");
}

#[test]
fn a_newer_schema_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    store_with_data(&p);
    Connection::open(&p)
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let e = open_store(&p, &SCHEMA).unwrap_err();
    assert!(matches!(e, StoreError::TooNew { found: 7, .. }), "{e}");
    assert!(e.to_string().contains("t.sqlite"), "{e}");
}

#[test]
fn concurrent_first_opens_share_one_store() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let p = &p;
                s.spawn(move || {
                    let conn = open_store(p, &SCHEMA).unwrap();
                    conn.execute("INSERT INTO items (body) VALUES (?1)", [i.to_string()])
                        .unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let conn = open_store(&p, &SCHEMA).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 8);
}
