//! touxiang service: HTTP app, CLI and the wiring of the library crates.
pub mod auth;
pub mod cli;
pub mod cmd_backup;
pub mod cmd_batch;
pub mod cmd_bench;
pub mod cmd_datasets;
pub mod cmd_eval;
pub mod cmd_keys;
pub mod cmd_portfolio;
pub mod cmd_train;
pub mod config;
pub mod engine;
pub mod error;
pub mod ext;
pub mod extract;
pub mod openapi;
pub mod queue;
pub mod review;
pub mod routes;
pub mod server;
pub mod state;
pub mod store_check;

pub use routes::app;
pub use state::AppState;
