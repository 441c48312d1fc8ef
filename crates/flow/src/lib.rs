//! Where the money really went (投向): fund-flow tracing for touxiang.
//!
//! * [`FlowStore`] — `DIR/flow.sqlite` beside the portfolio store, which it reads (attached
//!   read-only) and never writes.
//! * [`FlowStore::ingest_payments`] / [`FlowStore::ingest_relations`] — payment records and
//!   borrower relations from CSV, XLSX or JSONL, read by the portfolio crate's row sources, with
//!   row errors `{row, field, reason}` and the all-or-nothing / commit-valid modes of loan
//!   ingest ([`ingest`], [`payments`], [`relations`]).
//! * [`FlowStore::label_payees`] — each payee classified from its name with the service's
//!   classifier, people recognised as people, cached by normalised name ([`payees`],
//!   [`names`]).
//! * [`FlowStore::loan_flow`] — declared vs actual use of one loan's money: hops with their
//!   evidence, a mismatch score and `restricted_use` / `round_trip` / `inconsistent` flags with
//!   reasons in words ([`flow`], [`rules`]).
//! * [`FlowStore::circles`] / [`FlowStore::borrower_graph`] — guarantee circles with their
//!   exposures ([`graph`], [`borrowers`]).
//! * [`synth`] — a generated book with planted diversions and circles, and the benchmark.

pub mod actual;
pub mod alerts;
pub mod bench;
pub mod borrowers;
pub mod error;
pub mod flow;
pub mod graph;
pub mod ingest;
pub mod name_rules;
pub mod names;
pub mod payee_eval;
pub mod payee_review;
pub mod payees;
pub mod payments;
pub mod relations;
pub mod rules;
pub mod store;
pub mod synth;
pub mod synth_data;

pub use alerts::{CircleWarning, DiversionAlert, FlowAlerts};
pub use borrowers::Borrower;
pub use error::{FlowError, Result};
pub use flow::{Assessment, Flag, FlagKind, FlowOptions, Hop, LoanFlow, SectionShare};
pub use graph::{BorrowerGraph, Circle, Circles, GraphOptions, Member, MemberLoan};
pub use ingest::{IngestOptions, IngestSummary, Input};
pub use payees::{Label, PayeeKind, PayeeLabel, Step};
pub use relations::{Relation, RelationKind};
pub use rules::{Restricted, DEFAULT_RESTRICTED};
pub use store::FlowStore;
