//! The service's integration tests, one module per area, linked into a single test binary
//! (one link of the whole stack instead of nine keeps a clean CI build small and fast).

mod common;
mod raw_http;

mod backup_restore;
mod cli_batch;
mod cli_files;
mod contract_errors;
mod exemplar_index;
mod http_auth;
mod http_classify;
mod http_embed;
mod http_jobs;
mod http_portfolio;
mod http_review;
mod loan_roles;
mod queue_admission;
mod review_durability;
mod review_load;
mod server_limits;
mod startup_integrity;
