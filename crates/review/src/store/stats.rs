//! Queue and reviewer counters (`ReviewStore::stats`).

use chrono::{DateTime, Utc};

use super::{ms, ReviewStore};
use crate::types::*;
use crate::ReviewError;

impl ReviewStore {
    /// Queue and reviewer counters (`GET /v1/review/stats`).
    pub fn stats(&self, now: DateTime<Utc>) -> Result<Stats, ReviewError> {
        use std::collections::BTreeMap;
        let now_ms = ms(now);
        let conn = self.reader()?;
        let mut queues: BTreeMap<String, QueueStats> = BTreeMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT queue,
                   SUM(status = 'pending' OR (status = 'leased' AND lease_expires_ms <= ?1)),
                   SUM(stage = 'second' AND (status = 'pending'
                       OR (status = 'leased' AND lease_expires_ms <= ?1))),
                   SUM(status = 'leased' AND lease_expires_ms > ?1),
                   SUM(status = 'done'),
                   MIN(CASE WHEN status = 'pending'
                            OR (status = 'leased' AND lease_expires_ms <= ?1)
                       THEN enqueued_ms END)
                 FROM items GROUP BY queue",
            )?;
            let mut rows = stmt.query([now_ms])?;
            while let Some(r) = rows.next()? {
                let q: String = r.get(0)?;
                let oldest: Option<i64> = r.get(5)?;
                queues.insert(
                    q.clone(),
                    QueueStats {
                        queue: q,
                        pending: r.get::<_, i64>(1)? as u64,
                        pending_second_review: r.get::<_, i64>(2)? as u64,
                        leased: r.get::<_, i64>(3)? as u64,
                        labeled: r.get::<_, i64>(4)? as u64,
                        oldest_pending_age_secs: oldest
                            .map(|o| (now_ms - o).max(0) as f64 / 1000.0),
                        reviewers: vec![],
                    },
                );
            }
        }
        // (queue, reviewer) → counters; queue "" = all queues.
        let mut per: BTreeMap<(String, String), ReviewerStats> = BTreeMap::new();
        let mut bump =
            |queue: String, reviewer: String, f: &dyn Fn(&mut ReviewerStats, u64), n: u64| {
                for q in [queue, String::new()] {
                    let e = per
                        .entry((q, reviewer.clone()))
                        .or_insert_with(|| ReviewerStats {
                            reviewer: reviewer.clone(),
                            ..Default::default()
                        });
                    f(e, n);
                }
            };
        for (sql, f) in [
            (
                "SELECT queue, leased_by, COUNT(*) FROM items
                 WHERE status = 'leased' AND lease_expires_ms > ?1 GROUP BY 1, 2",
                (|e: &mut ReviewerStats, n| e.leased += n) as fn(&mut ReviewerStats, u64),
            ),
            (
                "SELECT queue, reviewer, COUNT(*) FROM labels WHERE ?1 = ?1 GROUP BY 1, 2",
                |e, n| e.labeled += n,
            ),
            (
                "SELECT queue, reviewer, COUNT(*) FROM skips WHERE ?1 = ?1 GROUP BY 1, 2",
                |e, n| e.skipped += n,
            ),
        ] {
            let mut stmt = conn.prepare(sql)?;
            let mut rows = stmt.query([now_ms])?;
            while let Some(r) = rows.next()? {
                bump(r.get(0)?, r.get(1)?, &f, r.get::<_, i64>(2)? as u64);
            }
        }
        let mut reviewers = Vec::new();
        for ((q, _), s) in per {
            if q.is_empty() {
                reviewers.push(s);
            } else {
                queues
                    .entry(q.clone())
                    .or_insert_with(|| QueueStats {
                        queue: q,
                        ..Default::default()
                    })
                    .reviewers
                    .push(s);
            }
        }
        Ok(Stats {
            at: now,
            queues: queues.into_values().collect(),
            reviewers,
        })
    }
}
