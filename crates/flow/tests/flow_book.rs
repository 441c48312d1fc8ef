//! The generated book: planted diversions are found (recall and precision printed), round
//! trips are detected with reasons in words, and guarantee circles with their exposures equal
//! an independent computation from the generated files.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::{book, truth_labeler};
use touxiang_flow::synth::FlowSynthSpec;
use touxiang_flow::{Assessment, FlagKind, FlowOptions, GraphOptions, Restricted};

fn spec() -> FlowSynthSpec {
    FlowSynthSpec {
        loans: 1500,
        circles: 25,
        ..Default::default()
    }
}

#[test]
fn planted_diversions_are_found() {
    let b = book(&spec(), true);
    let lab = truth_labeler(&b.truth);
    let flows = b
        .flow
        .portfolio_flows("book", &FlowOptions::default(), Some(&lab), None)
        .unwrap();
    assert_eq!(flows.len() as u64, b.truth.loans);
    let planted: BTreeMap<(&str, &str), &str> = b
        .truth
        .diversions
        .iter()
        .map(|d| ((d.loan_id.as_str(), d.kind), d.payee.as_str()))
        .collect();
    for kind in ["restricted_use", "round_trip"] {
        let fk = if kind == "restricted_use" {
            FlagKind::RestrictedUse
        } else {
            FlagKind::RoundTrip
        };
        let found: BTreeSet<&str> = flows
            .iter()
            .filter(|f| f.flags.iter().any(|x| x.kind == fk))
            .map(|f| f.loan_id.as_str())
            .collect();
        let truth: BTreeSet<&str> = planted
            .keys()
            .filter(|(_, k)| *k == kind)
            .map(|(l, _)| *l)
            .collect();
        let tp = found.intersection(&truth).count() as f64;
        let recall = tp / truth.len().max(1) as f64;
        let precision = tp / found.len().max(1) as f64;
        println!(
            "planted {kind}: {} planted, {} flagged, recall {recall:.3}, precision {precision:.3}",
            truth.len(),
            found.len()
        );
        assert!(truth.len() >= 20, "enough planted {kind}");
        assert_eq!(recall, 1.0, "{kind}: every planted diversion found");
        assert_eq!(precision, 1.0, "{kind}: nothing else flagged");
    }
    // the same loans, found as alerts without analysing every loan
    let alerts = b
        .flow
        .alerts("book", &FlowOptions::default(), Some(&lab), 100_000)
        .unwrap();
    let alerted: BTreeSet<&str> = alerts
        .diversions
        .iter()
        .map(|a| a.loan_id.as_str())
        .collect();
    let all: BTreeSet<&str> = planted.keys().map(|(l, _)| *l).collect();
    println!(
        "diversion alerts: {} (of {} candidate loans checked); circle warnings: {}",
        alerts.diversions.len(),
        alerts.loans_checked,
        alerts.circle_warnings.len()
    );
    assert_eq!(alerted, all, "alerts = planted diversions");
    assert!(
        alerts.loans_checked < flows.len() as u64 / 2,
        "candidates, not every loan"
    );
    assert!(alerts
        .circle_warnings
        .iter()
        .all(|w| !w.overdue_members.is_empty() && w.reason.contains("担保圈")));
    assert!(!alerts.circle_warnings.is_empty());
    // developers paying developers are not restricted use
    let dev: Vec<_> = flows
        .iter()
        .filter(|f| f.declared.as_ref().is_some_and(|d| d.code == "7010"))
        .collect();
    assert!(dev.iter().any(|f| f
        .hops
        .iter()
        .any(|h| h.label.as_ref().is_some_and(|l| l.code == "7010"))));
    assert!(dev
        .iter()
        .flat_map(|f| f.flags.iter())
        .all(|x| x.kind != FlagKind::RestrictedUse || x.code.as_deref() != Some("7010")));
    // clean loans: no mismatch
    let clean = flows.iter().filter(|f| f.flags.is_empty()).count();
    println!("loans without any flag: {clean} of {}", flows.len());
    assert!(flows
        .iter()
        .filter(|f| f.flags.is_empty())
        .all(|f| f.mismatch_score == 0.0));
}

#[test]
fn round_trips_and_reasons_in_words() {
    let b = book(&spec(), true);
    let lab = truth_labeler(&b.truth);
    let rt = b
        .truth
        .diversions
        .iter()
        .find(|d| d.kind == "round_trip")
        .expect("a planted round trip");
    let f = b
        .flow
        .loan_flow("book", &rt.loan_id, &FlowOptions::default(), Some(&lab))
        .unwrap();
    let flag = f
        .flags
        .iter()
        .find(|x| x.kind == FlagKind::RoundTrip)
        .expect("round trip flagged");
    assert!(flag.reason.contains("回流"), "{}", flag.reason);
    assert!(flag.reason.contains(&rt.payee), "{}", flag.reason);
    assert!(flag.reason.contains("万元"), "{}", flag.reason);
    let hop = f.hops.iter().find(|h| h.payee_name == rt.payee).unwrap();
    assert_eq!(hop.assessment, Assessment::RoundTrip);
    assert!(hop.relation.is_some());
    println!("round trip: {}", flag.reason);
    // both kinds of round trip were planted and found
    let mut by_relation: HashMap<String, usize> = HashMap::new();
    for d in b.truth.diversions.iter().filter(|d| d.kind == "round_trip") {
        let f = b
            .flow
            .loan_flow("book", &d.loan_id, &FlowOptions::default(), Some(&lab))
            .unwrap();
        let h = f.hops.iter().find(|h| h.payee_name == d.payee).unwrap();
        *by_relation.entry(h.relation.clone().unwrap()).or_default() += 1;
    }
    println!("round trips by counterpart: {by_relation:?}");
    assert!(by_relation.contains_key("borrower"));
    assert!(
        by_relation.len() >= 2,
        "to related parties too: {by_relation:?}"
    );
    // a restricted-use flag says where, how much, and to whom
    let d = b
        .truth
        .diversions
        .iter()
        .find(|d| d.kind == "restricted_use")
        .unwrap();
    let f = b
        .flow
        .loan_flow("book", &d.loan_id, &FlowOptions::default(), Some(&lab))
        .unwrap();
    let flag = f
        .flags
        .iter()
        .find(|x| x.kind == FlagKind::RestrictedUse)
        .unwrap();
    assert!(
        flag.reason.contains("限制用途") && flag.reason.contains(&d.payee),
        "{}",
        flag.reason
    );
    assert!(f.mismatch_score > 0.0 && f.mismatch_score <= 1.0);
    println!("restricted use: {}", flag.reason);
    // a narrower restricted list: 小贷 and 典当 only are no longer flagged when excluded
    let only = Restricted::parse("7010").unwrap();
    let f2 = b
        .flow
        .loan_flow(
            "book",
            &d.loan_id,
            &FlowOptions { restricted: only },
            Some(&lab),
        )
        .unwrap();
    assert_eq!(
        f2.flags.iter().any(|x| x.kind == FlagKind::RestrictedUse),
        d.code.as_deref() == Some("7010")
    );
}

#[test]
fn circles_and_exposures_equal_an_independent_computation() {
    let b = book(&spec(), true);
    // independent: read the generated CSVs, union-find by hand over guarantee rows
    let loans = std::fs::read_to_string(b.dir.join("loans.csv")).unwrap();
    let mut exposure: HashMap<String, (f64, f64)> = HashMap::new();
    for l in loans.lines().skip(1) {
        let c: Vec<&str> = l.split(',').collect();
        let (bal, od): (f64, u32) = (c[3].parse().unwrap(), c[4].parse().unwrap());
        let e = exposure.entry(c[11].to_string()).or_default();
        e.0 += bal;
        if od > 0 {
            e.1 += bal;
        }
    }
    let rels = std::fs::read_to_string(b.dir.join("relations.csv")).unwrap();
    let mut parent: HashMap<String, String> = HashMap::new();
    fn find(p: &mut HashMap<String, String>, x: &str) -> String {
        let up = p
            .entry(x.to_string())
            .or_insert_with(|| x.to_string())
            .clone();
        if up == x {
            return up;
        }
        let r = find(p, &up);
        p.insert(x.to_string(), r.clone());
        r
    }
    for l in rels.lines().skip(1) {
        let c: Vec<&str> = l.split(',').collect();
        if c[2] == "guarantee" {
            let (a, z) = (find(&mut parent, c[0]), find(&mut parent, c[1]));
            parent.insert(a, z);
        }
    }
    let keys: Vec<String> = parent.keys().cloned().collect();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for k in keys {
        let r = find(&mut parent, &k);
        groups.entry(r).or_default().insert(k);
    }
    let mut expected: Vec<(BTreeSet<String>, f64, f64, f64)> = groups
        .into_values()
        .filter(|g| g.len() >= 2)
        .map(|g| {
            let total: f64 = g.iter().map(|m| exposure[m].0).sum();
            let overdue: f64 = g.iter().map(|m| exposure[m].1).sum();
            (g, total, overdue, if overdue > 0.0 { total } else { 0.0 })
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let got = b.flow.circles("book", GraphOptions::default()).unwrap();
    let mut got: Vec<(BTreeSet<String>, f64, f64, f64)> = got
        .circles
        .iter()
        .map(|c| {
            (
                c.members.iter().map(|m| m.key.clone()).collect(),
                c.total_exposure,
                c.overdue_exposure,
                c.exposure_at_risk,
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), b.truth.circles.len());
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.0, e.0);
        for (x, y) in [(g.1, e.1), (g.2, e.2), (g.3, e.3)] {
            assert!((x - y).abs() < 1e-6, "{g:?} vs {e:?}");
        }
    }
    let at_risk = got.iter().filter(|c| c.3 > 0.0).count();
    println!(
        "circles: {} (members {}), {at_risk} with an overdue member; exposures equal the independent computation",
        got.len(),
        got.iter().map(|c| c.0.len()).sum::<usize>()
    );
    assert!(at_risk >= 1);
    // one member's neighbourhood
    let m = got[0].0.iter().next().unwrap();
    let g = b
        .flow
        .borrower_graph("book", m, GraphOptions::default())
        .unwrap();
    assert_eq!(g.borrower.key, *m);
    assert!(!g.relations.is_empty());
    assert_eq!(g.circle.unwrap().members.len(), got[0].0.len());
}

/// A member that becomes overdue between two snapshots raises its circle's early warning:
/// named as newly overdue against the previous snapshot, listed first, said in the reason;
/// circles whose members were already overdue carry no such news.
#[test]
fn a_member_becoming_overdue_is_the_circles_early_warning() {
    let b = book(
        &FlowSynthSpec {
            loans: 600,
            circles: 10,
            ..Default::default()
        },
        true,
    );
    let lab = truth_labeler(&b.truth);
    let opts = FlowOptions::default();
    let before = b.flow.alerts("book", &opts, Some(&lab), 100_000).unwrap();
    assert!(before
        .circle_warnings
        .iter()
        .all(|w| w.newly_overdue_members.is_empty() && w.previous_as_of.is_none()));
    // a circle with no overdue member; its first member's loans go 45 days overdue next month
    let circles = b.flow.circles("book", GraphOptions::default()).unwrap();
    let quiet = circles
        .circles
        .iter()
        .find(|c| c.overdue_members == 0)
        .expect("a circle without overdue members");
    let m = &quiet.members[0];
    let its: BTreeSet<&str> = m.loans.iter().map(|l| l.loan_id.as_str()).collect();
    let mut rdr = csv::Reader::from_path(b.dir.join("loans.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (id, days, asof) = (col("loan_id"), col("overdue_days"), col("as_of_date"));
    let next = b.dir.join("loans-next.csv");
    let mut w = csv::Writer::from_path(&next).unwrap();
    w.write_record(&h).unwrap();
    for r in rdr.records() {
        let r = r.unwrap();
        let row: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, v)| match i {
                i if i == asof => "2025-07-31".to_string(),
                i if i == days && its.contains(&r[id]) => "45".to_string(),
                _ => v.to_string(),
            })
            .collect();
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    let store = touxiang_portfolio::PortfolioStore::open(&b.data).unwrap();
    let r = store
        .ingest_file(
            "book",
            &next,
            &touxiang_portfolio::IngestOptions::default(),
            None,
        )
        .unwrap();
    assert!(r.committed, "{:?}", r.rejected);
    let after = b.flow.alerts("book", &opts, Some(&lab), 100_000).unwrap();
    let name = m.name.clone().unwrap_or_else(|| m.key.clone());
    let first = &after.circle_warnings[0];
    assert_eq!(first.circle_id, quiet.id, "the new warning comes first");
    assert_eq!(first.newly_overdue_members, vec![name.clone()]);
    assert_eq!(first.previous_as_of.as_deref(), Some("2025-06-30"));
    assert!(
        first.reason.starts_with("【新增】") && first.reason.contains(&name),
        "{}",
        first.reason
    );
    // the circles overdue in both snapshots carry no news
    let old: BTreeSet<&str> = before
        .circle_warnings
        .iter()
        .map(|w| w.circle_id.as_str())
        .collect();
    assert!(!old.is_empty());
    for w in after
        .circle_warnings
        .iter()
        .filter(|w| old.contains(w.circle_id.as_str()))
    {
        assert!(w.newly_overdue_members.is_empty(), "{}", w.reason);
    }
    println!(
        "circle warnings: {} before, {} after ({} new)",
        before.circle_warnings.len(),
        after.circle_warnings.len(),
        after
            .circle_warnings
            .iter()
            .filter(|w| !w.newly_overdue_members.is_empty())
            .count()
    );
}

/// Answers 7010 (real estate development) for a text naming 土地出让金 and abstains on every
/// other: a name alone tells it nothing, the memo does.
struct MemoOnly;

impl touxiang_datasets::Labeler for MemoOnly {
    fn label(
        &self,
        texts: &[&str],
    ) -> Result<Vec<touxiang_datasets::LabelResult>, touxiang_datasets::LabelError> {
        let tax = touxiang_datasets::Taxonomy::gbt4754();
        Ok(texts
            .iter()
            .map(|t| {
                let hit = t.contains("土地出让金");
                let path: Vec<touxiang_datasets::PathStep> = if hit {
                    tax.path("7010")
                        .into_iter()
                        .map(|n| touxiang_datasets::PathStep {
                            code: n.code.to_string(),
                            name: n.name.to_string(),
                            confidence: 0.95,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                touxiang_datasets::LabelResult {
                    code: hit.then(|| "7010".to_string()),
                    level: hit.then(|| "class".to_string()),
                    name: path.last().map(|p| p.name.clone()),
                    path,
                    confidence: if hit { 0.95 } else { 0.0 },
                    decision: if hit {
                        touxiang_datasets::Decision::Auto
                    } else {
                        touxiang_datasets::Decision::Review
                    },
                    model_version: "memo".into(),
                    taxonomy_version: "gbt4754-2017".into(),
                    evidence: Default::default(),
                }
            })
            .collect())
    }
    fn model_version(&self) -> String {
        "memo".into()
    }
    fn taxonomy_version(&self) -> String {
        "gbt4754-2017".into()
    }
}

/// A payee whose name leaves the classifier unsure is classified again with its payments'
/// memo, and that label is kept (source `model+memo`); without a memo it stays unlabeled.
#[test]
fn the_memo_is_evidence_when_the_name_is_not_enough() {
    let b = book(
        &FlowSynthSpec {
            loans: 50,
            circles: 1,
            ..Default::default()
        },
        false,
    );
    let file = common::write(
        &b.dir,
        "memo-payments.csv",
        "payment_id,loan_id,payee_name,payee_account,amount,paid_at,memo,channel\n\
         M1,L00000001,江城恒远实业有限公司,,800000,2024-05-01,土地出让金,自主支付\n\
         M2,L00000002,江城恒远实业有限公司,,10000,2024-05-02,往来款,自主支付\n\
         M3,L00000001,江城某某商贸有限公司,,5000,2024-05-03,,自主支付\n",
    );
    let p = b
        .flow
        .ingest_payments(
            "book",
            touxiang_flow::Input::File(&file, None),
            &touxiang_flow::IngestOptions::default(),
        )
        .unwrap();
    assert!(p.committed, "{:?}", p.rejected);
    b.flow.label_payees("book", &MemoOnly).unwrap();
    let labels = b
        .flow
        .payee_labels(&["江城恒远实业有限公司", "江城某某商贸有限公司"], None)
        .unwrap();
    let by_name = |n: &str| {
        labels
            .get(&touxiang_flow::names::normalize(n))
            .and_then(|l| l.label.clone())
    };
    let l = by_name("江城恒远实业有限公司").expect("labeled from the memo");
    assert_eq!(l.code, "7010");
    assert_eq!(l.source.as_deref(), Some("model+memo"));
    assert!(
        by_name("江城某某商贸有限公司").is_none(),
        "no memo, no label"
    );
}
