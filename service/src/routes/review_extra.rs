//! What the reviewer workbench needs beside the core review calls:
//!
//! * `GET /v1/review/me?since=&taxonomy=&reviewer=` — the acting reviewer's own figures
//!   ([`touxiang_review::ReviewStore::reviewer_activity`]);
//! * the extra fields of a claimed item (`POST /v1/review/claim`) and of the item view
//!   (`GET /v1/review/{id}`, inside `item`): `keywords` (as `/v1/classify` returns them for the
//!   text), the borrower fields stored with the item (`borrower_name`, `business_scope`,
//!   `declared_industry`; they stay under `neighbors.borrower` too), and — only for an item at the
//!   adjudication stage — `earlier_labels`, the two disagreeing labels of the double review.
//!   A second reviewer never sees the first label (the two labels must be independent); the item
//!   view's `item.labels` holds every label given so far (`stage`, `reviewer`, `code`,
//!   `comment`, `labeled_at`), for every stage.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use touxiang_auth::Principal;
use touxiang_review::{LabelRecord, Stage};
use utoipa::ToSchema;

use crate::auth::acting_reviewer;
use crate::error::ApiError;
use crate::review::{blocking, RegistryLookup};
use crate::state::AppState;

/// One of the two labels an adjudicator decides between.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EarlierLabel {
    pub reviewer: String,
    pub code: String,
    /// Name of the code in the item's taxonomy (empty if unknown).
    pub name: String,
    pub comment: Option<String>,
    /// When it was given.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// `first` | `second`.
    #[schema(value_type = String)]
    pub stage: Stage,
}

/// The first and second labels of an item at the adjudication stage; `None` at other stages.
pub fn earlier_labels(
    stage: Stage,
    taxonomy: &str,
    labels: &[LabelRecord],
    lookup: &RegistryLookup,
) -> Option<Vec<EarlierLabel>> {
    if stage != Stage::Adjudication {
        return None;
    }
    let tax = lookup.taxonomy(taxonomy);
    Some(
        labels
            .iter()
            .filter(|l| matches!(l.stage, Stage::First | Stage::Second))
            .map(|l| EarlierLabel {
                reviewer: l.reviewer.clone(),
                code: l.code.clone(),
                name: tax
                    .as_ref()
                    .and_then(|t| t.get(&l.code))
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
                comment: l.comment.clone(),
                at: l.labeled_at,
                stage: l.stage,
            })
            .collect(),
    )
}

/// Borrower fields stored with an item (under `neighbors.borrower` at enqueue):
/// `(borrower_name, business_scope, declared_industry code)`.
pub fn borrower_fields(
    neighbors: &serde_json::Value,
) -> (Option<String>, Option<String>, Option<String>) {
    let b = &neighbors["borrower"];
    let text = |v: &serde_json::Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    (
        text(&b["borrower_name"]),
        text(&b["business_scope"]),
        text(&b["declared"]["code"]).or_else(|| text(&b["declared_industry"])),
    )
}

/// Add `keywords`, the borrower fields and (at adjudication) `earlier_labels` to the item view
/// of `GET /v1/review/{id}` (an [`touxiang_review::ItemView`] as JSON).
pub fn extend_item_view(
    item: &mut serde_json::Value,
    keywords: Vec<String>,
    earlier: Option<Vec<EarlierLabel>>,
) {
    let (name, scope, declared) = borrower_fields(&item["neighbors"]);
    let Some(obj) = item.as_object_mut() else {
        return;
    };
    obj.insert("keywords".into(), serde_json::json!(keywords));
    obj.insert("borrower_name".into(), serde_json::json!(name));
    obj.insert("business_scope".into(), serde_json::json!(scope));
    obj.insert("declared_industry".into(), serde_json::json!(declared));
    if let Some(e) = earlier {
        obj.insert("earlier_labels".into(), serde_json::json!(e));
    }
}

/// Agreement of the reviewer's labels with final labels.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementOut {
    /// The reviewer's first/second labels on final items that also carry another reviewer's
    /// label or an adjudication (all time).
    pub compared: u64,
    /// Of those, labels equal to the final code.
    pub agreed: u64,
    /// `agreed / compared`; null when nothing was compared.
    pub rate: Option<f64>,
}

/// `GET /v1/review/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewerMe {
    pub reviewer: String,
    /// Start of the window of `labeled` and `skipped` (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub since: DateTime<Utc>,
    /// Taxonomy filter applied, if any.
    pub taxonomy: Option<String>,
    /// Labels given since `since` (any stage).
    pub labeled: u64,
    /// Skips since `since`.
    pub skipped: u64,
    /// Labels given in total.
    pub labeled_total: u64,
    pub agreement: AgreementOut,
}

/// Parse `since`: RFC 3339 (a `+` offset sent unescaped arrives as a space and is read back),
/// or a date `YYYY-MM-DD` (its start, UTC). Default: the start of the current UTC day.
fn parse_since(raw: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        let today = Utc::now().date_naive();
        return Ok(today.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    };
    let parsed = DateTime::parse_from_rfc3339(raw)
        .or_else(|e| DateTime::parse_from_rfc3339(&raw.replace(' ', "+")).map_err(|_| e))
        .map(|t| t.with_timezone(&Utc))
        .or_else(|e| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                .map_err(|_| e)
        });
    parsed.map_err(|e| {
        ApiError::invalid(
            "since",
            format!("since {raw:?} is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z): {e}"),
        )
    })
}

/// The acting reviewer's own figures: labels and skips since `since`, labels in total, and
/// agreement with final labels.
#[utoipa::path(get, path = "/v1/review/me", tag = "review", security(("bearer" = [])),
    params(("since" = Option<String>, Query, description = "RFC 3339 time (or YYYY-MM-DD, UTC) from which `labeled` and `skipped` count; default the start of the current UTC day"),
        ("taxonomy" = Option<String>, Query, description = "Only items of this taxonomy"),
        ("reviewer" = Option<String>, Query, description = "Reviewer id (admin keys; required without authentication); default the key's name")),
    responses((status = 200, body = ReviewerMe),
        (status = 403, description = "wrong role, or asking for another reviewer", body = crate::error::ErrorBody),
        (status = 422, description = "bad `since`, unknown `taxonomy`, or no reviewer (named in `field`)", body = crate::error::ErrorBody)))]
pub async fn me(
    State(s): State<AppState>,
    caller: Option<Extension<Principal>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ReviewerMe>, ApiError> {
    crate::routes::check_max_chars(
        "reviewer",
        q.get("reviewer").map(String::as_str),
        crate::routes::MAX_ID_CHARS,
    )?;
    let principal = caller.as_ref().map(|Extension(p)| p);
    let reviewer = acting_reviewer(&s, principal, q.get("reviewer").map(String::as_str))?;
    let since = parse_since(q.get("since").map(String::as_str))?;
    let ctx = s.review();
    let taxonomy = q.get("taxonomy").cloned().filter(|t| !t.is_empty());
    if let Some(t) = &taxonomy {
        if !ctx.knows_taxonomy(&s, t) {
            return Err(ApiError::invalid(
                "taxonomy",
                format!("unknown taxonomy '{t}'"),
            ));
        }
    }
    let tax = taxonomy.clone();
    let a = blocking(move || {
        Ok(ctx
            .store
            .reviewer_activity(&reviewer, since, tax.as_deref())?)
    })
    .await?;
    Ok(Json(ReviewerMe {
        reviewer: a.reviewer,
        since: a.since,
        taxonomy,
        labeled: a.labeled,
        skipped: a.skipped,
        labeled_total: a.labeled_total,
        agreement: AgreementOut {
            compared: a.agreement.compared,
            agreed: a.agreement.agreed,
            rate: a.agreement.rate,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let t = parse_since(Some("2026-03-01T08:00:00+08:00")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        // `+` decoded as a space by form decoding
        assert_eq!(parse_since(Some("2026-03-01T08:00:00 08:00")).unwrap(), t);
        assert_eq!(
            parse_since(Some("2026-03-01")).unwrap().to_rfc3339(),
            t.to_rfc3339()
        );
        let today = parse_since(None).unwrap();
        assert!(today <= Utc::now() && Utc::now() - today < chrono::Duration::days(1));
        let e = parse_since(Some("yesterday")).unwrap_err();
        assert_eq!(e.parts().2, Some("since"));
    }
}
