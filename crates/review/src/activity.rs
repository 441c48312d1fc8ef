//! One reviewer's own figures (`GET /v1/review/me` in the service): labels and skips since a
//! time, labels in total, and how often their labels agree with the final label of items
//! someone else labeled too.
//!
//! **Agreement with the final label.** Counted over this reviewer's *first* and *second*
//! labels (all time, not only since `since`) on items that are final and that carry another
//! label too: the other double-review label (by another reviewer) or an adjudication. A label
//! agrees when its code is the final code. The reviewer's own adjudication labels do not count
//! (they *are* the final label), nor do single-review items (nothing to compare with: the
//! reviewer's label is final by itself).

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use crate::store::ms;
use crate::{ReviewError, ReviewStore};

/// Agreement of one reviewer's labels with the final labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FinalAgreement {
    /// Labels compared: the reviewer's first/second labels on final items that carry another
    /// reviewer's label or an adjudication.
    pub compared: u64,
    /// Of `compared`, labels whose code is the final code.
    pub agreed: u64,
    /// `agreed / compared`; `None` when nothing was compared.
    pub rate: Option<f64>,
}

/// What one reviewer did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewerActivity {
    /// Reviewer id.
    pub reviewer: String,
    /// Start of the window of `labeled` and `skipped`.
    pub since: DateTime<Utc>,
    /// Labels given (any stage) at or after `since`.
    pub labeled: u64,
    /// Skips made at or after `since`.
    pub skipped: u64,
    /// Labels given in total (any stage, all time).
    pub labeled_total: u64,
    /// Agreement with final labels (all time; see the module docs).
    pub agreement: FinalAgreement,
}

impl ReviewStore {
    /// Figures of `reviewer` (of one taxonomy's items when given). Reads on its own connection,
    /// so it never waits behind claims.
    pub fn reviewer_activity(
        &self,
        reviewer: &str,
        since: DateTime<Utc>,
        taxonomy: Option<&str>,
    ) -> Result<ReviewerActivity, ReviewError> {
        let conn = self.reader()?;
        let count = |sql: &str, since_ms: i64| -> Result<u64, ReviewError> {
            let n: i64 =
                conn.query_row(sql, params![reviewer, since_ms, taxonomy], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        let labels = "SELECT COUNT(*) FROM labels l JOIN items i ON i.id = l.item_id
                      WHERE l.reviewer = ?1 AND l.labeled_ms >= ?2
                        AND (?3 IS NULL OR i.taxonomy = ?3)";
        let labeled = count(labels, ms(since))?;
        let labeled_total = count(labels, i64::MIN)?;
        let skipped = count(
            "SELECT COUNT(*) FROM skips s JOIN items i ON i.id = s.item_id
             WHERE s.reviewer = ?1 AND s.skipped_ms >= ?2 AND (?3 IS NULL OR i.taxonomy = ?3)",
            ms(since),
        )?;
        let (compared, agreed): (i64, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(l.code = i.final_code), 0)
             FROM labels l JOIN items i ON i.id = l.item_id
             WHERE l.reviewer = ?1 AND l.stage != 'adjudication' AND i.status = 'done'
               AND (?2 IS NULL OR i.taxonomy = ?2)
               AND EXISTS (SELECT 1 FROM labels o
                           WHERE o.item_id = l.item_id AND o.id != l.id
                             AND (o.reviewer != ?1 OR o.stage = 'adjudication'))",
            params![reviewer, taxonomy],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (compared, agreed) = (compared.max(0) as u64, agreed.max(0) as u64);
        Ok(ReviewerActivity {
            reviewer: reviewer.to_string(),
            since,
            labeled,
            skipped,
            labeled_total,
            agreement: FinalAgreement {
                compared,
                agreed,
                rate: (compared > 0).then(|| agreed as f64 / compared as f64),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use crate::{NewItem, ReviewConfig, Synchronous};

    use super::*;

    fn path(_tax: &str, code: &str) -> Option<Vec<String>> {
        ["6291", "6210", "1311"]
            .contains(&code)
            .then(|| vec![code.to_string()])
    }

    #[test]
    fn counts_and_agreement_with_final_labels() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReviewStore::open(
            dir.path(),
            ReviewConfig {
                synchronous: Synchronous::Normal,
                checkpoint_interval: None,
                ..ReviewConfig::default()
            },
        )
        .unwrap();
        let t0 = Utc.timestamp_opt(1_780_000_000, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let ttl = Duration::from_secs(600);
        let item = |text: &str, double: bool, tax: &str| {
            let mut it = NewItem::new("default", text, tax, 0.5);
            it.double_review = Some(double);
            store.enqueue(&it, t0).unwrap()
        };
        let claim_label = |queue: &str, who: &str, code: &str, t: i64| {
            let c = store.claim(queue, who, ttl, at(t)).unwrap().unwrap();
            store
                .label(&c.review_id, who, code, None, &path, at(t))
                .unwrap();
            c.review_id
        };
        // Agreed double review: a and b both say 6291.
        item("饺子馆", true, "gbt");
        claim_label("default", "a", "6291", 10);
        claim_label("default", "b", "6291", 20);
        // Disagreement: a says 6291, b 6210; c adjudicates 6210.
        item("面馆", true, "gbt");
        claim_label("default", "a", "6291", 30);
        claim_label("default", "b", "6210", 40);
        claim_label("adjudication", "c", "6210", 50);
        // Single review by a (final by itself: not compared), in another taxonomy.
        item("钢厂", false, "other");
        claim_label("default", "a", "1311", 60);
        // A skip by a.
        let s = item("烧烤", false, "gbt");
        let c = store.claim("default", "a", ttl, at(70)).unwrap().unwrap();
        assert_eq!(c.review_id, s);
        store.skip(&s, "a", Some("unclear"), at(70)).unwrap();

        let a = store.reviewer_activity("a", at(25), None).unwrap();
        assert_eq!((a.labeled, a.skipped, a.labeled_total), (2, 1, 3));
        assert_eq!((a.agreement.compared, a.agreement.agreed), (2, 1));
        assert_eq!(a.agreement.rate, Some(0.5));
        let b = store.reviewer_activity("b", t0, None).unwrap();
        assert_eq!((b.agreement.compared, b.agreement.agreed), (2, 2));
        // The adjudicator's own label is the final one: nothing to compare.
        let c = store.reviewer_activity("c", t0, None).unwrap();
        assert_eq!(
            (c.labeled, c.agreement.compared, c.agreement.rate),
            (1, 0, None)
        );
        // Taxonomy filter; a window after everything.
        let a = store.reviewer_activity("a", t0, Some("other")).unwrap();
        assert_eq!((a.labeled, a.skipped, a.agreement.compared), (1, 0, 0));
        let a = store.reviewer_activity("a", at(1000), None).unwrap();
        assert_eq!((a.labeled, a.skipped, a.labeled_total), (0, 0, 3));
        let nobody = store.reviewer_activity("z", t0, None).unwrap();
        assert_eq!(nobody.labeled_total, 0);
    }
}
