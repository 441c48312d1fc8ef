//! The served OpenAPI document (`GET /openapi.json`, UI at `/docs`).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "touxiang API", version = "1", description = "Where the loan money goes: GB/T 4754-2017 classification of loan purposes, review queues, portfolio aggregation. Errors are always {\"error\": {\"code\", \"message\", \"field\"}}."),
    paths(routes::health::healthz, routes::health::readyz, routes::health::metrics, routes::embed::embed, routes::classify::classify, routes::portfolio::list_portfolios, routes::portfolio::upload_loans, routes::portfolio::ingest_report, routes::portfolio::aggregate, routes::portfolio::concentration, routes::portfolio::scores, routes::portfolio::alerts, routes::flow::upload_payments, routes::flow::upload_relations, routes::flow::loan_flow, routes::flow::circles, routes::flow::borrower, routes::jobs::create_job, routes::jobs::list_jobs, routes::jobs::get_job, routes::jobs::cancel_job, routes::jobs::job_output, routes::review::claim, routes::review::label, routes::review::skip, routes::review::release, routes::review::stats, routes::review::item, routes::review::agreement, routes::review_extra::me, routes::whoami::whoami, routes::taxonomy::list, routes::taxonomy::search, routes::admin::list_keys, routes::admin::create_key, routes::admin::revoke_key, routes::admin::get_settings, routes::admin::put_settings, routes::ui::dashboard, routes::ui::workbench, routes::ui::file),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, routes::embed::EmbedRequest, routes::embed::EmbedResponse, routes::classify::ClassifyRequest, routes::classify::ClassifyItem, routes::classify::ClassifyResponse, routes::classify::ClassifyResult, routes::classify::LabelOut, routes::classify::PathStepOut, routes::classify::AlternativeOut, routes::classify::DeclaredOut, routes::classify::NeighborOut, routes::portfolio::AggregateResponse, routes::portfolio::ConcentrationResponse, routes::portfolio::ScoresResponse, routes::portfolio::AlertsResponse, routes::portfolio::PortfolioSummary, routes::portfolio::PortfolioList, routes::portfolio::RowErrorDoc, routes::portfolio::IngestSummary, routes::portfolio::IngestModeParam, routes::flow::FlowStepDoc, routes::flow::FlowLabelDoc, routes::flow::HopDoc, routes::flow::FlagDoc, routes::flow::SectionShareDoc, routes::flow::BorrowerRefDoc, routes::flow::LoanFlowDoc, routes::flow::MemberLoanDoc, routes::flow::MemberDoc, routes::flow::RelationDoc, routes::flow::CircleDoc, routes::flow::CirclesDoc, routes::flow::BorrowerGraphDoc, routes::flow::FlowIngestSummary, routes::jobs::JobRequest, routes::jobs::JobDoc, routes::jobs::JobList, routes::review::ClaimRequest, routes::review::ClaimResponse, routes::review::LabelRequest, routes::review::LabelResponse, routes::review::SkipRequest, routes::review::ReleaseRequest, routes::review::UnleaseResponse, crate::review::ExemplarStatus, crate::vector_store::StoreStatus, routes::review_extra::EarlierLabel, routes::review_extra::ReviewerMe, routes::review_extra::AgreementOut, routes::whoami::WhoAmI, routes::taxonomy::TaxonomyList, routes::taxonomy::TaxonomyInfo, routes::taxonomy::SearchResponse, crate::taxonomy_search::SearchHit, crate::taxonomy_search::PathNode, routes::admin::KeyDoc, routes::admin::KeyList, routes::admin::CreateKeyRequest, routes::admin::CreatedKey, routes::admin::Settings)),
    modifiers(&Security, &CommonErrors),
    tags((name = "ops"), (name = "embeddings"), (name = "classify"), (name = "portfolio"), (name = "flow", description = "Where the money went: payments, payee industries, diversion flags, guarantee circles"), (name = "jobs"), (name = "review"), (name = "taxonomy"), (name = "auth"), (name = "admin"), (name = "ui", description = "The browser pages, served by the binary (see UI.md)"))
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

/// Error responses every operation can give because of the layers around it, documented on
/// each operation that does not list them itself (all with the [`crate::error::ErrorBody`]
/// shape): 401/403 where a key is required, 400/413/415/422 where there is a request body,
/// 422 where there are query parameters,
/// 408 (request timeout) and 500 everywhere, and 429 beside 503 where the operation waits on
/// the encoder (it already documents one of the two).
struct CommonErrors;

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add_common_errors(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| {
            matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
        })
    });
    let responses = &mut op.responses.responses;
    let waits_on_encoder = responses.contains_key("429") || responses.contains_key("503");
    let mut add = |code: &str, description: &str| {
        responses
            .entry(code.to_string())
            .or_insert_with(|| error_response(description));
    };
    add("408", "The request took longer than the configured timeout");
    add("500", "Internal error");
    if secured {
        add("401", "Missing or unknown API key");
        add("403", "The key lacks the permission this operation needs");
    }
    if has_body {
        add("400", "Unreadable body (not UTF-8, not parseable)");
        add("413", "Body over the size limit");
        add("415", "Unsupported Content-Type");
        add(
            "422",
            "A field is missing or invalid (named in `error.field`)",
        );
    }
    if has_query {
        add(
            "422",
            "A query parameter is invalid (named in `error.field`)",
        );
    }
    if waits_on_encoder {
        add(
            "429",
            "Overloaded: the request queue is full; retry after `Retry-After`",
        );
        add("503", "Not ready: the model or classifier is still loading");
    }
}

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common_errors(op);
            }
        }
    }
}
