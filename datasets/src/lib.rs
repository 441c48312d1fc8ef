//! Taxonomies, region tables and shared label types for touxiang.
//!
//! - [`Taxonomy`]: validated code trees — GB/T 4754-2017 ([`Taxonomy::gbt4754`]), the 资金用途
//!   purpose taxonomy ([`Taxonomy::purpose`]) and banks' own CSV taxonomies
//!   ([`Taxonomy::from_csv_path`], [`TaxonomyRegistry::load_dir`]).
//! - [`RegionTable`]: GB/T 2260 regions ([`RegionTable::china`]) and US states
//!   ([`RegionTable::us_states`]) with code resolution across spellings.
//! - [`label`]: the `Labeler` trait and label types shared by every consumer of the classifier.
//! - [`csv_safe()`]: spreadsheet formula-injection protection shared by every CSV export.
//!
//! The built-in data is embedded with `include_str!` and parsed once, on first use.
mod csv_safe;
mod csvutil;
mod error;
pub mod label;
pub mod loan_text;
mod region;
mod taxonomy;

pub use csv_safe::csv_safe;
pub use error::DatasetError;
pub use label::{
    neighbour_vote_path, Alternative, Decision, Evidence, LabelError, LabelResult, Labeler,
    PathStep,
};
pub use loan_text::LoanText;
pub use region::{Region, RegionLevel, RegionTable, ResolvedRegion};
pub use taxonomy::{Node, Taxonomy, TaxonomyRegistry, GBT4754_ID, PURPOSE_ID};
