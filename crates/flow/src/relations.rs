//! Relations between borrowers: `from, to, kind`.
//!
//! * `from`, `to`: borrowers of the portfolio, each named by its `borrower_id` or its
//!   `borrower_name` (see [`crate::borrowers`]); an endpoint that is no borrower of the portfolio
//!   is a row error, and so is a relation of a borrower with itself;
//! * `kind`: `guarantee` (`from` guarantees `to`'s loans; also 担保, 互保, 联保), `control`
//!   (`from` controls `to`; also 控制, 实际控制) or `supply-chain` (`supply_chain`, 供应链,
//!   上下游);
//! * the same `(from, to, kind)` twice (in the file, or already stored) is a row error.

use rusqlite::{params, Connection};
use serde::Serialize;
use touxiang_portfolio::RowError;

use crate::borrowers::{ensure_index, resolve, Borrower};
use crate::error::Result;
use crate::ingest::{self, Fields, IngestOptions, IngestSummary, Input, Table};
use crate::store::FlowStore;

/// Canonical relation columns.
pub const RELATION_COLUMNS: [&str; 3] = ["from", "to", "kind"];

/// Kind of a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RelationKind {
    /// `from` guarantees `to`'s loans.
    #[serde(rename = "guarantee")]
    Guarantee,
    /// `from` controls `to`.
    #[serde(rename = "control")]
    Control,
    /// Supplier / customer.
    #[serde(rename = "supply-chain")]
    SupplyChain,
}

impl RelationKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Guarantee => "guarantee",
            RelationKind::Control => "control",
            RelationKind::SupplyChain => "supply-chain",
        }
    }

    /// In words (alert texts).
    pub fn zh(self) -> &'static str {
        match self {
            RelationKind::Guarantee => "担保",
            RelationKind::Control => "控制",
            RelationKind::SupplyChain => "供应链",
        }
    }

    /// Parse a kind (see the module documentation for the synonyms).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_lowercase().replace(['_', ' '], "-").as_str() {
            "guarantee" | "担保" | "互保" | "联保" => Some(RelationKind::Guarantee),
            "control" | "控制" | "实际控制" => Some(RelationKind::Control),
            "supply-chain" | "supplychain" | "供应链" | "上下游" => {
                Some(RelationKind::SupplyChain)
            }
            _ => None,
        }
    }
}

pub(crate) struct RelationRow {
    row: u64,
    from: Borrower,
    to: Borrower,
    kind: RelationKind,
}

struct Relations<'a> {
    portfolio: &'a str,
}

impl Table for Relations<'_> {
    type Row = RelationRow;
    const NAME: &'static str = "relations";
    const COLUMNS: &'static [&'static str] = &RELATION_COLUMNS;
    const REQUIRED: &'static [&'static str] = &RELATION_COLUMNS;

    fn validate(
        &mut self,
        tx: &Connection,
        row: u64,
        f: &Fields<'_>,
        _attributes: Option<String>,
        errs: &mut Vec<RowError>,
    ) -> Result<Option<RelationRow>> {
        let n0 = errs.len();
        let end = |field: &str, errs: &mut Vec<RowError>| -> Result<Option<Borrower>> {
            let Some(v) = f.get(if field == "from" { 0 } else { 1 }) else {
                errs.push(RowError {
                    row,
                    field: field.into(),
                    reason: format!("empty {field}"),
                });
                return Ok(None);
            };
            let b = resolve(tx, self.portfolio, v)?;
            if b.is_none() {
                errs.push(RowError {
                    row,
                    field: field.into(),
                    reason: format!(
                        "unknown borrower {v:?}: no loan of portfolio {:?} has this borrower_id or borrower_name",
                        self.portfolio
                    ),
                });
            }
            Ok(b)
        };
        let from = end("from", errs)?;
        let to = end("to", errs)?;
        let kind = match f.get(2) {
            None => {
                errs.push(RowError {
                    row,
                    field: "kind".into(),
                    reason: "empty kind".into(),
                });
                None
            }
            Some(k) => {
                let p = RelationKind::parse(k);
                if p.is_none() {
                    errs.push(RowError {
                        row,
                        field: "kind".into(),
                        reason: format!("unknown kind {k:?} (guarantee, control or supply-chain)"),
                    });
                }
                p
            }
        };
        if let (Some(a), Some(b)) = (&from, &to) {
            if a.key == b.key {
                errs.push(RowError {
                    row,
                    field: "to".into(),
                    reason: format!("a relation of borrower {:?} with itself", a.key),
                });
            }
        }
        if errs.len() > n0 {
            return Ok(None);
        }
        Ok(Some(RelationRow {
            row,
            from: from.expect("validated"),
            to: to.expect("validated"),
            kind: kind.expect("validated"),
        }))
    }

    fn insert(
        &mut self,
        tx: &Connection,
        r: &RelationRow,
        ingest_id: i64,
    ) -> Result<Option<RowError>> {
        let res = tx
            .prepare_cached(
                "INSERT INTO relations (portfolio, from_key, to_key, kind, from_name, to_name, ingest_id) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7)",
            )?
            .execute(params![
                self.portfolio,
                r.from.key,
                r.to.key,
                r.kind.as_str(),
                r.from.name,
                r.to.name,
                ingest_id
            ]);
        match res {
            Ok(_) => Ok(None),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Ok(Some(RowError {
                    row: r.row,
                    field: "kind".into(),
                    reason: format!(
                        "duplicate: relation {:?} → {:?} ({}) appears earlier in this file or is already stored",
                        r.from.key,
                        r.to.key,
                        r.kind.as_str()
                    ),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl FlowStore {
    /// Ingest relations between the borrowers of `portfolio`.
    pub fn ingest_relations(
        &self,
        portfolio: &str,
        input: Input<'_>,
        opts: &IngestOptions,
    ) -> Result<IngestSummary> {
        let mut conn = self.connect(portfolio)?;
        ensure_index(&mut conn, portfolio)?;
        drop(conn);
        let mut src = ingest::open_source(input, opts.sheet.as_deref())?;
        ingest::run(
            self,
            portfolio,
            src.as_mut(),
            opts,
            &mut Relations { portfolio },
        )
    }
}

/// One stored relation.
#[derive(Debug, Clone, Serialize)]
pub struct Relation {
    /// Borrower key of `from`.
    pub from: String,
    /// Borrower key of `to`.
    pub to: String,
    /// Kind.
    pub kind: RelationKind,
    /// Name of `from` (when the book has names).
    pub from_name: Option<String>,
    /// Name of `to`.
    pub to_name: Option<String>,
}

/// Relations of a portfolio touching `key` (either end), or all of them when `key` is `None`.
pub(crate) fn load(conn: &Connection, portfolio: &str, key: Option<&str>) -> Result<Vec<Relation>> {
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Relation> {
        let kind: String = r.get(2)?;
        Ok(Relation {
            from: r.get(0)?,
            to: r.get(1)?,
            kind: RelationKind::parse(&kind).unwrap_or(RelationKind::SupplyChain),
            from_name: r.get(3)?,
            to_name: r.get(4)?,
        })
    };
    let cols = "SELECT from_key, to_key, kind, from_name, to_name FROM relations";
    Ok(match key {
        None => conn
            .prepare_cached(&format!("{cols} WHERE portfolio=?1 ORDER BY from_key, to_key, kind"))?
            .query_map([portfolio], map)?
            .collect::<rusqlite::Result<_>>()?,
        Some(k) => conn
            .prepare_cached(&format!(
                "{cols} WHERE portfolio=?1 AND from_key=?2 UNION {cols} WHERE portfolio=?1 AND to_key=?2"
            ))?
            .query_map(params![portfolio, k], map)?
            .collect::<rusqlite::Result<_>>()?,
    })
}
