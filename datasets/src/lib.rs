//! Taxonomies, region tables and shared label types for touxiang.
pub mod label;
pub use label::{Decision, LabelError, LabelResult, Labeler, PathStep};
