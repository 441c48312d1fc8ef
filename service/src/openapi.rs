//! The served OpenAPI document (`GET /openapi.json`, UI at `/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "touxiang API", version = "1", description = "Where the loan money goes: GB/T 4754-2017 classification of loan purposes, review queues, portfolio aggregation. Errors are always {\"error\": {\"code\", \"message\", \"field\"}}."),
    paths(routes::health::healthz, routes::health::readyz, routes::health::metrics, routes::embed::embed, routes::classify::classify, routes::portfolio::list_portfolios, routes::portfolio::upload_loans, routes::portfolio::aggregate, routes::portfolio::concentration, routes::portfolio::scores, routes::portfolio::alerts, routes::jobs::create_job, routes::jobs::list_jobs, routes::jobs::get_job, routes::jobs::cancel_job, routes::jobs::job_output, routes::review::claim, routes::review::label, routes::review::skip, routes::review::release, routes::review::stats, routes::review::item, routes::review::agreement, routes::admin::list_keys, routes::admin::create_key, routes::admin::revoke_key, routes::admin::get_settings, routes::admin::put_settings),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, routes::embed::EmbedRequest, routes::embed::EmbedResponse, routes::classify::ClassifyRequest, routes::classify::ClassifyItem, routes::classify::ClassifyResponse, routes::classify::ClassifyResult, routes::classify::LabelOut, routes::classify::PathStepOut, routes::classify::AlternativeOut, routes::classify::NeighborOut, routes::portfolio::AggregateResponse, routes::portfolio::ConcentrationResponse, routes::portfolio::ScoresResponse, routes::portfolio::AlertsResponse, routes::portfolio::PortfolioSummary, routes::portfolio::PortfolioList, routes::portfolio::RowErrorDoc, routes::portfolio::IngestSummary, routes::jobs::JobRequest, routes::jobs::JobDoc, routes::jobs::JobList, routes::review::ClaimRequest, routes::review::ClaimResponse, routes::review::LabelRequest, routes::review::LabelResponse, routes::review::SkipRequest, routes::review::ReleaseRequest, routes::review::UnleaseResponse, crate::review::ExemplarStatus, routes::admin::KeyDoc, routes::admin::KeyList, routes::admin::CreateKeyRequest, routes::admin::CreatedKey, routes::admin::Settings)),
    modifiers(&Security),
    tags((name = "ops"), (name = "embeddings"), (name = "classify"), (name = "portfolio"), (name = "jobs"), (name = "review"), (name = "admin"))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
