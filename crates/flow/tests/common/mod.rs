//! Shared set-up: a generated book ingested into a temporary data dir, and a labeler that
//! answers the code each generated payee name stands for (the model's stand-in here; the
//! service's integration tests use the real classifier).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use touxiang_datasets::{Decision, LabelError, LabelResult, Labeler, PathStep};
use touxiang_flow::synth::{write_book, FlowSynthSpec, Truth};
use touxiang_flow::{FlowStore, IngestOptions, Input};
use touxiang_portfolio::{IngestOptions as LoanOptions, PortfolioStore};

/// Answers the generated code of every known name (and abstains on others).
pub struct TruthLabeler(pub HashMap<String, Option<String>>);

impl Labeler for TruthLabeler {
    fn label(&self, texts: &[&str]) -> Result<Vec<LabelResult>, LabelError> {
        let tax = touxiang_datasets::Taxonomy::gbt4754();
        Ok(texts
            .iter()
            .map(|t| {
                let code = self.0.get(*t).cloned().flatten();
                let path: Vec<PathStep> = code
                    .as_deref()
                    .map(|c| {
                        tax.path(c)
                            .into_iter()
                            .map(|n| PathStep {
                                code: n.code.to_string(),
                                name: n.name.to_string(),
                                confidence: 0.9,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                LabelResult {
                    level: code.as_deref().map(|c| {
                        match c.len() {
                            1 => "section",
                            2 => "division",
                            3 => "group",
                            _ => "class",
                        }
                        .to_string()
                    }),
                    name: path.last().map(|p| p.name.clone()),
                    confidence: if code.is_some() { 0.9 } else { 0.0 },
                    code,
                    path,
                    decision: Decision::Auto,
                    model_version: "truth".into(),
                    taxonomy_version: "gbt4754-2017".into(),
                    evidence: Default::default(),
                }
            })
            .collect())
    }
    fn model_version(&self) -> String {
        "truth".into()
    }
    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}

pub struct Book {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub truth: Truth,
    pub flow: FlowStore,
}

/// Generate a book and ingest its loans (and, when asked, payments and relations).
pub fn book(spec: &FlowSynthSpec, with_flows: bool) -> Book {
    let dir = tempfile::tempdir().unwrap().keep();
    let truth = write_book(spec, &dir).unwrap();
    let data = dir.join("data");
    let store = PortfolioStore::open(&data).unwrap();
    let r = store
        .ingest_file(
            "book",
            &dir.join("loans.csv"),
            &LoanOptions::default(),
            None,
        )
        .unwrap();
    assert!(r.committed && r.rejected_total == 0, "{:?}", r.rejected);
    let flow = FlowStore::open(&data).unwrap();
    if with_flows {
        let p = flow
            .ingest_payments(
                "book",
                Input::File(&dir.join("payments.csv"), None),
                &IngestOptions::default(),
            )
            .unwrap();
        assert!(p.committed, "{:?}", p.rejected);
        assert_eq!(p.accepted, truth.payments);
        let r = flow
            .ingest_relations(
                "book",
                Input::File(&dir.join("relations.csv"), None),
                &IngestOptions::default(),
            )
            .unwrap();
        assert!(r.committed, "{:?}", r.rejected);
        assert_eq!(r.accepted, truth.relations);
    }
    Book {
        dir,
        data,
        truth,
        flow,
    }
}

pub fn truth_labeler(t: &Truth) -> TruthLabeler {
    TruthLabeler(
        t.payee_codes
            .iter()
            .map(|(n, c)| (touxiang_flow::payees::model_text(n), c.clone()))
            .collect(),
    )
}

pub fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}
