//! The service's integration tests, one module per area, linked into a single test binary
//! (one link of the whole stack instead of nine keeps a clean CI build small and fast).

mod common;
mod raw_http;

mod backup_restore;
mod cli_batch;
mod cli_files;
mod cli_synth_book;
mod contract_errors;
mod exemplar_index;
mod http_auth;
mod http_classify;
mod http_embed;
mod http_flow;
mod http_flow_payees;
mod http_jobs;
mod http_portfolio;
mod http_portfolio_reports;
mod http_review;
mod http_ui;
mod http_ui_api;
mod http_ui_review;
mod key_limits;
mod loan_roles;
mod qdrant_store;
mod queue_admission;
mod review_durability;
mod review_load;
mod server_limits;
mod startup_integrity;
mod ui_browser;
