//! The browser pages end to end, in real headless Chromium: the real binary on a fresh data
//! dir with authentication on, keys of three roles, a generated Chinese book with a planted
//! shock and a generated book with payments and guarantee relations, then `service/ui/e2e/run.mjs` (playwright-core) drives `/ui/review` and `/ui/`.
//!
//! Needs Debian's `chromium` and `npm ci` in `service/ui` (for playwright-core and the pinned
//! ECharts package the vendored copy is checked against): `.ci/run` installs both and runs this
//! test by name; the README's test command does the same. Screenshots land in
//! `target/ui-e2e/` (kept as test output).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::raw_http::{free_addr, request, wait_ready};

fn touxiang(data: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_touxiang"));
    cmd.args(args);
    if let Some(d) = data {
        cmd.arg("--data-dir").arg(d);
    }
    let o = cmd.output().expect("run touxiang");
    assert!(
        o.status.success(),
        "touxiang {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn new_key(data: &Path, role: &str, name: &str) -> String {
    touxiang(
        Some(data),
        &["keys", "create", "--role", role, "--name", name],
    )
    .lines()
    .last()
    .expect("key printed")
    .trim()
    .to_string()
}

struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs Debian chromium and `npm ci` in service/ui; .ci/run installs both and runs it (README: test command)"]
fn ui_browser_end_to_end() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} first",
        ui.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} missing: apt-get install chromium"
    );
    // the model files the server loads (fetched once per target dir, sha256-checked)
    let _ = crate::common::model();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let book = dir.path().join("book.csv");
    touxiang(
        None,
        &[
            "datasets",
            "synth-book",
            "--out",
            book.to_str().unwrap(),
            "--loans",
            "3000",
            "--months",
            "6",
            "--shock",
        ],
    );
    touxiang(
        Some(&data),
        &["ingest", "--portfolio", "demo", book.to_str().unwrap()],
    );
    // a GENERATED book with payments and guarantee relations, for the fund-flow panels
    let flow = dir.path().join("flow");
    touxiang(
        None,
        &[
            "flow",
            "synth-book",
            "--out",
            flow.to_str().unwrap(),
            "--loans",
            "300",
            "--circles",
            "4",
        ],
    );
    let model_dir = touxiang_model::test_model_dir();
    let file = |f: &str| flow.join(f).to_str().unwrap().to_string();
    touxiang(
        Some(&data),
        &["ingest", "--portfolio", "flow", &file("loans.csv")],
    );
    touxiang(
        Some(&data),
        &[
            "ingest-payments",
            "--portfolio",
            "flow",
            &file("payments.csv"),
            "--model-dir",
            model_dir.to_str().unwrap(),
        ],
    );
    touxiang(
        Some(&data),
        &[
            "ingest-relations",
            "--portfolio",
            "flow",
            &file("relations.csv"),
        ],
    );
    // keys made before the server starts (it then makes no admin key of its own)
    let keys = [
        ("TX_REVIEWER_KEY", new_key(&data, "reviewer", "r1")),
        ("TX_ANALYST_KEY", new_key(&data, "analyst", "a1")),
        ("TX_ORIGINATOR_KEY", new_key(&data, "originator", "o1")),
    ];

    let addr = free_addr();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_touxiang"));
    cmd.args(["serve", "--addr", &addr, "--data-dir"])
        .arg(&data)
        .arg("--model-dir")
        .arg(touxiang_model::test_model_dir())
        // the neighbour store is not what these pages test; embedding 46 k shipped exemplars
        // would take the CPU for minutes
        .env("TOUXIANG_CLASSIFY__SEED_EXEMPLARS", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _server = Server(cmd.spawn().expect("spawn touxiang serve"));
    assert!(
        wait_ready(&addr, Duration::from_secs(180)),
        "server not ready: {:?}",
        request(&addr, "GET", "/readyz", None)
    );
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-e2e");
    let status = Command::new("node")
        .arg(ui.join("e2e/run.mjs"))
        .envs(keys.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TX_BASE", format!("http://{addr}"))
        .env("TX_PORTFOLIO", "demo")
        .env("TX_FLOW_PORTFOLIO", "flow")
        .env("TX_OUT", &out)
        .env("CHROMIUM", &chromium)
        .status()
        .expect("run node");
    assert!(
        status.success(),
        "browser end-to-end checks failed (see the output above)"
    );
    for shot in [
        "workbench.png",
        "dashboard.png",
        "dashboard-drilled.png",
        "dashboard-flow.png",
    ] {
        assert!(out.join(shot).is_file(), "screenshot {shot} written");
    }
}
