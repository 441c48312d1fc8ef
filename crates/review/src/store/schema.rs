//! The review database schema (migration step 1 of `crate::integrity::STORE_SCHEMA`).

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id               INTEGER PRIMARY KEY,
    review_id        TEXT NOT NULL UNIQUE,
    queue            TEXT NOT NULL,
    origin_queue     TEXT NOT NULL,
    text             TEXT NOT NULL,
    taxonomy         TEXT NOT NULL,
    external_id      TEXT,
    amount           REAL,
    exposure         REAL NOT NULL,
    uncertainty      REAL NOT NULL,
    log2_base        REAL NOT NULL,
    prio_key         REAL NOT NULL,
    reason           TEXT NOT NULL,
    suggestions      TEXT NOT NULL,
    neighbors        TEXT NOT NULL,
    model_version    TEXT,
    required_labels  INTEGER NOT NULL CHECK (required_labels IN (1, 2)),
    stage            TEXT NOT NULL CHECK (stage IN ('first', 'second', 'adjudication')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'leased', 'done')),
    leased_by        TEXT,
    lease_expires_ms INTEGER,
    enqueued_ms      INTEGER NOT NULL,
    final_code       TEXT,
    final_reviewer   TEXT,
    final_ms         INTEGER
);
CREATE INDEX IF NOT EXISTS items_claim ON items (queue, prio_key DESC) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS items_leases ON items (lease_expires_ms) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS items_final ON items (final_ms) WHERE status = 'done';
CREATE INDEX IF NOT EXISTS items_queue_status ON items (queue, status);

CREATE TABLE IF NOT EXISTS labels (
    id         INTEGER PRIMARY KEY,
    item_id    INTEGER NOT NULL REFERENCES items (id),
    stage      TEXT NOT NULL,
    queue      TEXT NOT NULL,
    reviewer   TEXT NOT NULL,
    code       TEXT NOT NULL,
    comment    TEXT,
    labeled_ms INTEGER NOT NULL,
    UNIQUE (item_id, stage)
);
CREATE INDEX IF NOT EXISTS labels_item_reviewer ON labels (item_id, reviewer);
CREATE INDEX IF NOT EXISTS labels_reviewer ON labels (reviewer);

CREATE TABLE IF NOT EXISTS skips (
    id         INTEGER PRIMARY KEY,
    item_id    INTEGER NOT NULL REFERENCES items (id),
    reviewer   TEXT NOT NULL,
    queue      TEXT NOT NULL,
    skipped_ms INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS skips_item_reviewer ON skips (item_id, reviewer, until_ms);

CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    review_id TEXT,
    detail    TEXT NOT NULL,
    previous  TEXT
);
CREATE INDEX IF NOT EXISTS audit_review ON audit (review_id, seq);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);

CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
"#;
