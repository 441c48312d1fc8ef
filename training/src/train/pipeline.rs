//! The training run itself: gold nodes, embeddings, heads, exemplar and lexical indexes,
//! calibration, metrics and the saved artifacts (with the model version's fitted hash).

use std::collections::HashMap;
use std::time::Instant;

use super::{corpus_of, metrics_for, TrainConfig, TrainReport};
use crate::artifacts::{ArtifactMeta, Artifacts};
use crate::calibrate::fit_calibration;
use crate::classifier::{Classifier, HeadOutputs, Neighbor};
use crate::corpus::{Example, Split};
use crate::embed::{embed_all, EmbedFn};
use crate::error::{Result, TrainError};
use crate::heads::{train_linear, TargetSet};
use crate::knn::ExemplarIndex;
use crate::tfidf::LexicalIndex;
use crate::tree::Tree;

/// Gold node index of every example (errors name the code).
fn gold_nodes(tree: &Tree, ex: &[&Example]) -> Result<Vec<usize>> {
    ex.iter()
        .map(|e| {
            tree.find(&e.code).ok_or_else(|| TrainError::UnknownCode {
                code: e.code.clone(),
                context: format!("example {:?}", e.text),
            })
        })
        .collect()
}

/// Train, calibrate, evaluate and save. See the crate docs for the pipeline.
pub fn train(cfg: &TrainConfig, embedder: &dyn EmbedFn) -> Result<TrainReport> {
    let t0 = Instant::now();
    let tree = &cfg.tree;
    if cfg.targets.auto_min_depth >= tree.depth_count() {
        return Err(TrainError::Invalid(format!(
            "auto decisions from depth {} but taxonomy {} has {} level(s): no label could ever be auto",
            cfg.targets.auto_min_depth,
            tree.id,
            tree.depth_count()
        )));
    }
    let corpus = corpus_of(cfg)?;
    let stats = corpus.stats();
    tracing::info!("corpus:\n{stats}");
    let train_ex = corpus.split(Split::Train);
    let calib_ex = corpus.split(Split::Calib);
    let test_ex = corpus.split(Split::Test);
    if train_ex.is_empty() || calib_ex.is_empty() {
        return Err(TrainError::Invalid(format!(
            "need training and calibration examples (train {}, calib {})",
            train_ex.len(),
            calib_ex.len()
        )));
    }
    let g_train = gold_nodes(tree, &train_ex)?;
    let g_calib = gold_nodes(tree, &calib_ex)?;
    let g_test = gold_nodes(tree, &test_ex)?;

    // embeddings
    let t_embed = Instant::now();
    let texts: Vec<&str> = corpus.examples.iter().map(|e| e.text.as_str()).collect();
    let vecs = embed_all(embedder, &texts, cfg.cache_dir.as_deref(), cfg.embed_batch)?;
    let by_text: HashMap<&str, &Vec<f32>> = texts.iter().copied().zip(vecs.iter()).collect();
    let emb = |ex: &[&Example]| -> Vec<Vec<f32>> {
        ex.iter()
            .map(|e| by_text[e.text.as_str()].clone())
            .collect()
    };
    let (x_train, x_calib, x_test) = (emb(&train_ex), emb(&calib_ex), emb(&test_ex));
    let seconds_embed = t_embed.elapsed().as_secs_f64();
    let dim = embedder.dim();

    // class-balanced weights: 1/sqrt(count of the code), mean 1
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for g in &g_train {
        *counts.entry(*g).or_default() += 1;
    }
    let mut w_train: Vec<f32> = train_ex
        .iter()
        .zip(&g_train)
        .map(|(e, g)| e.weight / (counts[g] as f32).sqrt())
        .collect();
    let mean = w_train.iter().sum::<f32>() / w_train.len() as f32;
    w_train.iter_mut().for_each(|w| *w /= mean);
    let w_calib: Vec<f32> = calib_ex.iter().map(|e| e.weight).collect();

    let t_train = Instant::now();
    let mut logs = Vec::new();
    let flat = if cfg.flat_head {
        let build = |x: &[Vec<f32>], g: &[usize], w: &[f32]| {
            let mut s = TargetSet::new(dim);
            for i in 0..x.len() {
                let allowed = tree.leaves_under(g[i]).iter().map(|&p| p as u32).collect();
                s.push(&x[i], allowed, w[i]);
            }
            s
        };
        let (tr, ca) = (
            build(&x_train, &g_train, &w_train),
            build(&x_calib, &g_calib, &w_calib),
        );
        let (lin, log) = train_linear(tree.leaves().len(), &tr, &ca, &cfg.head, cfg.seed)?;
        tracing::info!(?log, "flat head");
        logs.push(log);
        Some(lin)
    } else {
        None
    };
    let mut levels = Vec::new();
    if cfg.level_heads {
        // With a flat head the deepest level is the flat head itself (same outputs, same loss on
        // leaf-coded examples), so level heads are trained for the levels above it only.
        let n_level_heads = if cfg.flat_head {
            tree.depth_count() - 1
        } else {
            tree.depth_count()
        };
        for d in 0..n_level_heads {
            let build = |x: &[Vec<f32>], g: &[usize], w: &[f32]| {
                let mut s = TargetSet::new(dim);
                for i in 0..x.len() {
                    if let Some(a) = tree.ancestor_at(g[i], d) {
                        s.push(&x[i], vec![tree.pos_in_level(a) as u32], w[i]);
                    }
                }
                s
            };
            let (tr, ca) = (
                build(&x_train, &g_train, &w_train),
                build(&x_calib, &g_calib, &w_calib),
            );
            let (lin, log) = train_linear(
                tree.level(d).len(),
                &tr,
                &ca,
                &cfg.head,
                cfg.seed.wrapping_add(d as u64 + 1),
            )?;
            tracing::info!(depth = d, ?log, "level head");
            logs.push(log);
            levels.push(lin);
        }
    }
    if flat.is_none() && levels.is_empty() {
        return Err(TrainError::Invalid(
            "enable the flat head, the level heads or both".into(),
        ));
    }
    let seconds_train = t_train.elapsed().as_secs_f64();

    // kNN and lexical indexes over the training exemplars (the service seeds its store with
    // them), less the sources the heads learn from but the neighbour votes do not need
    let keep: Vec<usize> = (0..train_ex.len())
        .filter(|&i| !cfg.exemplars_exclude.contains(&train_ex[i].source))
        .collect();
    let ex_vecs: Vec<Vec<f32>> = keep.iter().map(|&i| x_train[i].clone()).collect();
    let ex_texts: Vec<String> = keep.iter().map(|&i| train_ex[i].text.clone()).collect();
    let ex_codes: Vec<String> = keep.iter().map(|&i| train_ex[i].code.clone()).collect();
    tracing::info!(
        exemplars = keep.len(),
        of = train_ex.len(),
        "exemplar index"
    );
    let index = ExemplarIndex::new(
        dim,
        &ex_vecs,
        ex_texts.clone(),
        ex_codes.clone(),
        keep.iter().map(|_| "seed".to_string()).collect(),
    )?;
    let lexical = cfg
        .lexical
        .map(|lc| LexicalIndex::new(lc, ex_texts, ex_codes));
    let mut proto = Classifier::new(
        tree.clone(),
        flat,
        levels,
        placeholder_cal(tree),
        placeholder_cal(tree),
        cfg.knn_k,
        cfg.targets.auto_min_depth,
        String::new(),
        embedder.version(),
        dim,
    );
    if let Some(ix) = lexical {
        proto = proto.with_lexical(ix);
    }
    // the actor lexicon the role phrasings were generated from gives the re-ranker its role cues
    if let super::CorpusSource::Notes { options, .. } = &cfg.source {
        if let Some(a) = &options.actors {
            proto = proto.with_role_cues(crate::role_cues::RoleCues::new(a, tree)?);
        }
    }
    // Calibration set: the loan texts when given (the distribution the service is used on),
    // else the corpus's calibration split. With loan texts, the corpus's calibration split still
    // fits the similarity gate (how far near-duplicate exemplars are trusted).
    let h_corpus = proto.head_outputs_for_texts(&texts_of(&calib_ex), &x_calib)?;
    let n_corpus = index.search(&x_calib, cfg.knn_k)?;
    let gate = crate::gate::GateSet {
        heads: &h_corpus,
        neighbors: &n_corpus,
        gold: &g_calib,
    };
    let loans = if cfg.calib_loans.is_empty() {
        None
    } else {
        let texts: Vec<String> = cfg
            .calib_loans
            .iter()
            .map(|(l, _)| l.model_text())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let x = embed_all(embedder, &refs, cfg.cache_dir.as_deref(), cfg.embed_batch)?;
        let gold = loan_gold(tree, &cfg.calib_loans)?;
        let h = proto.head_outputs_for_texts(&refs, &x)?;
        Some((h, index.search(&x, cfg.knn_k)?, gold))
    };
    let (h_calib, n_calib, g_calib, gate): (&[HeadOutputs], &[Vec<Neighbor>], &[usize], _) =
        match &loans {
            Some((h, n, g)) => (h, n, g, Some(&gate)),
            None => (&h_corpus, &n_corpus, &g_calib, None),
        };
    let (cal_knn, choices_knn) = fit_calibration(
        tree,
        h_calib,
        Some(n_calib),
        g_calib,
        cfg.knn_k,
        &cfg.knn_taus,
        &cfg.lexical_taus,
        &cfg.targets,
        gate,
    );
    let (cal_heads, choices_heads) = fit_calibration(
        tree,
        h_calib,
        None,
        g_calib,
        cfg.knn_k,
        &cfg.knn_taus,
        &cfg.lexical_taus,
        &cfg.targets,
        None,
    );
    tracing::info!(?cal_knn.mix, ?cal_knn.temperature, ?cal_knn.level_thresholds, cal_knn.auto_threshold, "calibration (with kNN)");

    let corpus_version = corpus.version();
    let enc_tag: String = crate::embed::stable_hash(&embedder.version(), 0).to_le_bytes()[..3]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Classifier {
        tree: t,
        flat,
        levels,
        lexical,
        ..
    } = proto;
    let fit_tag = fitted_hash(flat.as_ref(), &levels, &cal_knn, &cal_heads)?;
    // Corpus, encoder and seed say what went in; the fitted hash tells apart artifacts that the
    // same inputs gave under different training code (each loan keeps the version it was
    // labeled with, so two different classifiers must never share one).
    let model_version = format!(
        "tx1-{}-{}-s{}-{}",
        &corpus_version[..10],
        enc_tag,
        cfg.seed,
        fit_tag
    );
    let mut clf = Classifier::new(
        t,
        flat,
        levels,
        cal_knn,
        cal_heads,
        cfg.knn_k,
        cfg.targets.auto_min_depth,
        model_version.clone(),
        embedder.version(),
        dim,
    );
    clf.lexical = lexical;

    let calib_m = metrics_for(&clf, h_calib, Some(n_calib), g_calib);
    let h_test = clf.head_outputs_for_texts(&texts_of(&test_ex), &x_test)?;
    let n_test = index.search(&x_test, cfg.knn_k)?;
    let test_m = metrics_for(&clf, &h_test, Some(&n_test), &g_test);
    let test_heads = metrics_for(&clf, &h_test, None, &g_test);

    let artifact_dir = cfg.out_dir.join(&tree.id).join(&model_version);
    let mut report = TrainReport {
        model_version: model_version.clone(),
        artifact_dir: artifact_dir.clone(),
        encoder_version: embedder.version(),
        taxonomy_id: tree.id.clone(),
        taxonomy_version: tree.version.clone(),
        corpus_version: corpus_version.clone(),
        corpus: stats,
        seed: cfg.seed,
        heads: logs,
        mix_choices_knn: choices_knn,
        mix_choices_heads_only: choices_heads,
        calib: calib_m,
        test: test_m,
        test_heads_only: test_heads,
        seconds_embed,
        seconds_train,
        seconds_total: 0.0,
    };
    report.seconds_total = t0.elapsed().as_secs_f64();
    let meta = ArtifactMeta::from_report(&report, &clf, cfg);
    let arts = Artifacts {
        classifier: clf,
        meta,
        exemplars: cfg.save_exemplars.then_some(index),
    };
    arts.save(&artifact_dir)?;
    Ok(report)
}

/// First 3 bytes (hex) of the SHA-256 of everything fitted: head weights and both calibrations.
pub(crate) fn fitted_hash(
    flat: Option<&crate::heads::Linear>,
    levels: &[crate::heads::Linear],
    cal_knn: &crate::classifier::Calibration,
    cal_heads: &crate::classifier::Calibration,
) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&(cal_knn, cal_heads))?);
    for lin in flat.into_iter().chain(levels) {
        for t in [&lin.w, &lin.b] {
            for v in t.flatten_all()?.to_vec1::<f32>()? {
                h.update(v.to_le_bytes());
            }
        }
    }
    Ok(h.finalize()[..3]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Tree nodes of the codes of labeled loan texts; an unknown code names its text.
pub(crate) fn loan_gold(
    tree: &Tree,
    loans: &[(touxiang_datasets::LoanText, String)],
) -> Result<Vec<usize>> {
    loans
        .iter()
        .map(|(l, code)| {
            tree.find(code).ok_or_else(|| TrainError::UnknownCode {
                code: code.clone(),
                context: format!("calibration loan text {:?}", l.text),
            })
        })
        .collect()
}

fn texts_of<'a>(ex: &[&'a Example]) -> Vec<&'a str> {
    ex.iter().map(|e| e.text.as_str()).collect()
}

fn placeholder_cal(tree: &Tree) -> crate::classifier::Calibration {
    crate::classifier::Calibration::neutral([0.5, 0.5, 0.0, 0.0], 0.05, 0.05, tree.depth_count())
}
