//! Portfolio read-outs (part of [`super`]): `GET /v1/aggregate` (JSON/CSV/XLSX),
//! `GET /v1/concentration`, `GET /v1/scores`, `GET /v1/alerts`.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use touxiang_portfolio::{
    drill_down, export, AggQuery, AlertQuery, Dimension, PortfolioError, ScoreQuery, SnapshotSel,
};
use utoipa::ToSchema;

use super::{blocking, params, required, store, take, Params};
use crate::error::ApiError;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------------
// Documentation-only schemas (the library types serialise to these shapes)

/// Answer of `GET /v1/aggregate` (format=json). Each row is flat: one key per dimension
/// (`"industry.section": "C"`) plus `<dimension>_name`, then the metrics `loans, balance,
/// overdue_loans, overdue_balance, overdue_rate_count, overdue_rate_balance, share_of_total`,
/// and, when a previous period exists, `prev_month, prev_loans, prev_balance,
/// prev_overdue_balance, prev_overdue_rate_count, prev_overdue_rate_balance, balance_change,
/// balance_change_pct, overdue_rate_count_change, overdue_rate_balance_change`.
#[derive(Serialize, ToSchema)]
pub struct AggregateResponse {
    pub portfolio: String,
    /// Group-by dimensions, in order.
    pub by: Vec<String>,
    /// Snapshot months aggregated (`YYYY-MM`).
    pub months: Vec<String>,
    /// As-of date used for each month.
    pub as_of_dates: Vec<String>,
    /// Previous period (for the change fields), when there is one.
    pub previous_month: Option<String>,
    /// Overdue definition used, e.g. `overdue_days > 0`.
    pub overdue_definition: String,
    /// Rows before `top`/`limit`.
    pub total_rows: usize,
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    /// Same metric fields as a row, over all filtered loans.
    #[schema(value_type = Object)]
    pub totals: serde_json::Value,
    /// Present when `concentration=` was asked for: `{dimension, segments, hhi, hhi_points,
    /// top5_share, top: [{code, name, balance, share}]}`.
    #[schema(value_type = Vec<Object>)]
    pub concentration: Vec<serde_json::Value>,
}

/// Answer of `GET /v1/concentration`.
#[derive(Serialize, ToSchema)]
pub struct ConcentrationResponse {
    pub portfolio: String,
    pub months: Vec<String>,
    pub overdue_definition: String,
    /// Totals over the filtered loans.
    #[schema(value_type = Object)]
    pub totals: serde_json::Value,
    /// One entry per dimension: `{dimension, segments, hhi (Σ share²), hhi_points (10 000·hhi),
    /// top5_share, top: [{code, name, balance, share}]}`.
    #[schema(value_type = Vec<Object>)]
    pub concentration: Vec<serde_json::Value>,
}

/// Answer of `GET /v1/scores`: segments by exposure at risk, descending.
#[derive(Serialize, ToSchema)]
pub struct ScoresResponse {
    pub portfolio: String,
    pub by: Vec<String>,
    /// Each: `{keys: [{dim, code, name}], parent, month, loans, overdue_loans, balance,
    /// overdue_balance, raw_rate, parent_rate, prior_strength, prior_fitted, shrunk_rate,
    /// exposure_at_risk, baseline_rate, trend}`.
    #[schema(value_type = Vec<Object>)]
    pub scores: Vec<serde_json::Value>,
}

/// Answer of `GET /v1/alerts`: strongest first.
#[derive(Serialize, ToSchema)]
pub struct AlertsResponse {
    pub portfolio: String,
    pub by: Vec<String>,
    /// Each: `{keys, month, baseline_months, loans, overdue_loans, balance, overdue_balance,
    /// rate, baseline_loans, baseline_rate, z, p_value, threshold, reason}`; `reason` says in
    /// words what rose, by how much, against which baseline, with the test and its p-value.
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<serde_json::Value>,
    /// Fund-flow warnings (null when the data dir has no payments or relations):
    /// `{diversions: [{loan_id, borrower, kinds: ["restricted_use"|"round_trip"], amount,
    /// mismatch_score, reason}], circle_warnings: [{circle_id, members, overdue_members,
    /// newly_overdue_members, previous_as_of, total_exposure, overdue_exposure,
    /// exposure_at_risk, contagion_exposure, reason}] (circles where a member became overdue
    /// since the previous snapshot first),
    /// loans_checked, truncated}` — see `GET /v1/loans/{loan_id}/flow` and
    /// `GET /v1/graph/circles`.
    #[schema(value_type = Option<Object>)]
    pub flow: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// GET /v1/aggregate

fn apply_drills(mut q: AggQuery, drills: &[String]) -> Result<AggQuery, ApiError> {
    for d in drills {
        let (dim, code) = d
            .split_once(':')
            .ok_or_else(|| ApiError::invalid("drill", format!("{d:?} is not DIMENSION:CODE")))?;
        let dim = Dimension::parse(dim.trim()).ok_or_else(|| {
            ApiError::invalid("drill", format!("unknown dimension {:?}", dim.trim()))
        })?;
        q = drill_down(&q, dim, code.trim())?;
    }
    Ok(q)
}

#[derive(Clone, Copy, PartialEq)]
enum OutFormat {
    Json,
    Csv,
    Xlsx,
}

fn out_format(p: &mut Params) -> Result<OutFormat, ApiError> {
    match take(p, "format")?.as_deref().map(str::trim) {
        None | Some("") | Some("json") => Ok(OutFormat::Json),
        Some("csv") => Ok(OutFormat::Csv),
        Some("xlsx") => Ok(OutFormat::Xlsx),
        Some(f) => Err(ApiError::invalid(
            "format",
            format!("{f:?} is not json, csv or xlsx"),
        )),
    }
}

fn attachment(name: &str, ext: &str, mime: &'static str, body: Vec<u8>) -> Response {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disp = format!("attachment; filename=\"{safe}.{ext}\"");
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&disp) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Aggregate a portfolio over any dimensions, with filters, top-N, drill-down and export.
///
/// Dimensions: `industry.section|division|group|class`, `region.province|city|county`,
/// `customer_type`, `purpose`, `product`, `month`, `issue_month`, and `flow.section` — where the
/// loan's money actually went, from its payments (`POST /v1/portfolios/{name}/payments`): the
/// GB/T 4754 section that received the largest share, `individual`, `unlabeled`, or no value
/// for loans without payments; `by=industry.section,flow.section` is the declared × actual matrix. Any dimension name is also a
/// filter (`industry.section=C`, `region.province=11,44`; `filter.<dim>=` works too).
/// `drill=industry.section:C` replaces the dimension by its children filtered to the code (a
/// section's divisions, a province's cities); repeatable. Bad parameters → 422 naming the
/// parameter in `field`; unknown portfolio → 404.
#[utoipa::path(get, path = "/v1/aggregate", tag = "portfolio", security(("bearer" = [])),
    params(
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("by" = Option<String>, Query, description = "Comma list of dimensions, e.g. industry.section,region.province"),
        ("overdue_days_gt" = Option<u32>, Query, description = "Overdue ⇔ overdue_days > N (default 0)"),
        ("overdue_status" = Option<String>, Query, description = "Overdue ⇔ status in this comma list (instead of days)"),
        ("as_of" = Option<String>, Query, description = "latest (default) | all | YYYY-MM | YYYY-MM-DD"),
        ("top" = Option<usize>, Query, description = "Keep the N largest rows (by `sort`, default balance)"),
        ("limit" = Option<usize>, Query, description = "Keep the first N rows after sorting"),
        ("sort" = Option<String>, Query, description = "loans|balance|overdue_loans|overdue_balance|overdue_rate_count|overdue_rate_balance|share_of_total|balance_change|overdue_rate_count_change"),
        ("compare" = Option<bool>, Query, description = "Period-over-period change fields (default true)"),
        ("concentration" = Option<String>, Query, description = "Dimensions to compute HHI / top-5 share over"),
        ("drill" = Option<String>, Query, description = "DIMENSION:CODE drill-down"),
        ("format" = Option<String>, Query, description = "json (default) | csv | xlsx (attachment)"),
    ),
    responses(
        (status = 200, description = "JSON result, or a CSV/XLSX attachment with format=csv|xlsx (a final TOTAL row carries the totals)", body = AggregateResponse),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter (named in `field`)", body = crate::error::ErrorBody)))]
pub async fn aggregate(
    State(s): State<AppState>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    let fmt = out_format(&mut p)?;
    let mut drills = Vec::new();
    while let Some(d) = take_one(&mut p, "drill") {
        drills.push(d);
    }
    let query = AggQuery::from_params(&portfolio, &p)?;
    let query = apply_drills(query, &drills)?;
    let store = store(&s)?;
    let result = blocking(move || Ok(store.aggregate(&query)?)).await?;
    match fmt {
        OutFormat::Json => Ok(Json(result).into_response()),
        OutFormat::Csv => {
            let mut buf = Vec::new();
            export::to_csv(&result, &mut buf)?;
            Ok(attachment(
                &format!("aggregate-{portfolio}"),
                "csv",
                "text/csv; charset=utf-8",
                buf,
            ))
        }
        OutFormat::Xlsx => {
            let buf = blocking(move || Ok(export::to_xlsx(&result)?)).await?;
            Ok(attachment(
                &format!("aggregate-{portfolio}"),
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                buf,
            ))
        }
    }
}

/// Remove the first value of a repeatable parameter.
fn take_one(p: &mut Params, name: &str) -> Option<String> {
    let i = p.iter().position(|(k, _)| k == name)?;
    Some(p.remove(i).1)
}

// ---------------------------------------------------------------------------------------------
// GET /v1/concentration

/// Concentration of exposure (balance): HHI and top-5 share along each dimension of `by`
/// (default `industry.division,region.province`), over the filtered loans.
#[utoipa::path(get, path = "/v1/concentration", tag = "portfolio", security(("bearer" = [])),
    params(
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("by" = Option<String>, Query, description = "Dimensions (default industry.division,region.province)"),
        ("as_of" = Option<String>, Query, description = "latest (default) | all | YYYY-MM"),
    ),
    responses((status = 200, body = ConcentrationResponse),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter", body = crate::error::ErrorBody)))]
pub async fn concentration(
    State(s): State<AppState>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<ConcentrationResponse>, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    let by = take(&mut p, "by")?.unwrap_or_else(|| "industry.division,region.province".into());
    for k in ["concentration", "sort", "limit", "top", "format", "drill"] {
        if p.iter().any(|(x, _)| x == k) {
            return Err(ApiError::invalid(k, "not a parameter of concentration"));
        }
    }
    p.push(("concentration".into(), by.clone()));
    p.push(("compare".into(), "false".into()));
    let query = AggQuery::from_params(&portfolio, &p)
        .map_err(|e| rename_field(e, "concentration", "by"))?;
    if query.concentration.is_empty() {
        return Err(ApiError::invalid("by", "at least one dimension is needed"));
    }
    let store = store(&s)?;
    let r = blocking(move || Ok(store.aggregate(&query)?)).await?;
    Ok(Json(ConcentrationResponse {
        portfolio: r.portfolio,
        months: r.months,
        overdue_definition: r.overdue_definition,
        totals: serde_json::to_value(&r.totals).unwrap_or_default(),
        concentration: r
            .concentration
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect(),
    }))
}

fn rename_field(e: PortfolioError, from: &str, to: &str) -> ApiError {
    match e {
        PortfolioError::InvalidQuery { field, message } if field == from => {
            ApiError::invalid(to, message)
        }
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// GET /v1/scores

fn score_query(portfolio: &str, mut p: Params) -> Result<(ScoreQuery, Option<usize>), ApiError> {
    let num = |name: &str, v: &str| -> Result<f64, ApiError> {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| ApiError::invalid(name, format!("{v:?} is not a number ≥ 0")))
    };
    let trailing = take(&mut p, "trailing")?
        .map(|v| num("trailing", &v))
        .transpose()?;
    let min_siblings = take(&mut p, "min_siblings")?
        .map(|v| num("min_siblings", &v))
        .transpose()?;
    let strength = take(&mut p, "default_strength")?
        .map(|v| num("default_strength", &v))
        .transpose()?;
    let top = take(&mut p, "top")?
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| ApiError::invalid("top", format!("{v:?} is not a count")))
        })
        .transpose()?;
    for k in [
        "sort",
        "limit",
        "compare",
        "concentration",
        "format",
        "drill",
    ] {
        if p.iter().any(|(x, _)| x == k) {
            return Err(ApiError::invalid(k, "not a parameter of scores"));
        }
    }
    let a = AggQuery::from_params(portfolio, &p)?;
    if a.snapshot == SnapshotSel::All {
        return Err(ApiError::invalid(
            "as_of",
            "scores are for one month: latest or YYYY-MM",
        ));
    }
    if a.by.contains(&Dimension::Month) || a.by.contains(&Dimension::IssueMonth) {
        return Err(ApiError::invalid(
            "by",
            "month is the period of a score, not a segment dimension",
        ));
    }
    let by = if a.by.is_empty() {
        vec![Dimension::IndustrySection, Dimension::RegionProvince]
    } else {
        a.by
    };
    let mut q = ScoreQuery::new(portfolio, &by);
    q.filters = a.filters;
    q.overdue = a.overdue;
    q.snapshot = a.snapshot;
    if let Some(t) = trailing {
        if t < 1.0 {
            return Err(ApiError::invalid("trailing", "must be ≥ 1"));
        }
        q.trailing = t as usize;
    }
    if let Some(m) = min_siblings {
        q.min_siblings = m as usize;
    }
    if let Some(k) = strength {
        q.default_strength = k;
    }
    Ok((q, top))
}

/// Risk score per segment: overdue rate shrunk toward the parent segment's rate
/// (empirical-Bayes beta-binomial, so a small segment cannot game it), exposure at risk
/// (balance × shrunk rate) and trend vs the trailing months. Segments by exposure at risk,
/// descending; `top=N` keeps the first N.
#[utoipa::path(get, path = "/v1/scores", tag = "portfolio", security(("bearer" = [])),
    params(
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("by" = Option<String>, Query, description = "Segment dimensions (default industry.section,region.province)"),
        ("overdue_days_gt" = Option<u32>, Query, description = "Overdue definition (default 0)"),
        ("as_of" = Option<String>, Query, description = "latest (default) | YYYY-MM"),
        ("trailing" = Option<usize>, Query, description = "Baseline months for the trend (default 3)"),
        ("min_siblings" = Option<usize>, Query, description = "Siblings needed to fit the prior (default 3)"),
        ("default_strength" = Option<f64>, Query, description = "Prior strength κ when it cannot be fitted (default 100)"),
        ("top" = Option<usize>, Query, description = "Keep the N segments with most exposure at risk"),
    ),
    responses((status = 200, body = ScoresResponse),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter", body = crate::error::ErrorBody)))]
pub async fn scores(
    State(s): State<AppState>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<ScoresResponse>, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    let (query, top) = score_query(&portfolio, p)?;
    let by = query.by.iter().map(|d| d.as_str().to_string()).collect();
    let store = store(&s)?;
    let mut list = blocking(move || Ok(store.scores(&query)?)).await?;
    if let Some(n) = top {
        list.truncate(n);
    }
    Ok(Json(ScoresResponse {
        portfolio,
        by,
        scores: list
            .iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect(),
    }))
}

// ---------------------------------------------------------------------------------------------
// GET /v1/alerts

/// Early-warning alerts: segments whose overdue rate rose significantly above their own
/// baseline (one-sided two-proportion z-test of the current month vs the pooled trailing
/// months, at `alpha`, optionally Bonferroni-corrected; only segments with at least
/// `min_loans` loans now and in the baseline and `min_exposure` balance). Strongest first, each
/// with the reason in words.
#[utoipa::path(get, path = "/v1/alerts", tag = "portfolio", security(("bearer" = [])),
    params(
        ("portfolio" = String, Query, description = "Portfolio name"),
        ("by" = Option<String>, Query, description = "Segment dimensions (default industry.section,region.province)"),
        ("overdue_days_gt" = Option<u32>, Query, description = "Overdue definition (default 0)"),
        ("as_of" = Option<String>, Query, description = "latest (default) | YYYY-MM"),
        ("trailing" = Option<usize>, Query, description = "Baseline months (default 3)"),
        ("alpha" = Option<f64>, Query, description = "Significance level (default 0.01)"),
        ("bonferroni" = Option<bool>, Query, description = "Divide alpha by the number of segments tested"),
        ("min_exposure" = Option<f64>, Query, description = "Minimum current balance to alert (default 0)"),
        ("min_loans" = Option<u64>, Query, description = "Minimum loans now and in the baseline (default 30)"),
    ),
    responses((status = 200, body = AlertsResponse),
        (status = 404, description = "Unknown portfolio", body = crate::error::ErrorBody),
        (status = 422, description = "Bad parameter", body = crate::error::ErrorBody)))]
pub async fn alerts(
    State(s): State<AppState>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<AlertsResponse>, ApiError> {
    let mut p = params(q)?;
    let portfolio = required(&mut p, "portfolio")?;
    if let Some((k, _)) = p.iter().find(|(k, _)| k == "format" || k == "drill") {
        return Err(ApiError::invalid(k.clone(), "not a parameter of alerts"));
    }
    let query = AlertQuery::from_params(&portfolio, &p)?;
    let by = query.by.iter().map(|d| d.as_str().to_string()).collect();
    let store = store(&s)?;
    let list = blocking(move || Ok(store.alerts(&query)?)).await?;
    let flow = crate::routes::flow::flow_alerts(&s, &portfolio).await?;
    Ok(Json(AlertsResponse {
        flow,
        portfolio,
        by,
        alerts: list
            .iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect(),
    }))
}
