//! `kill -9` during a batch run, then `--resume`: the output is byte-identical to an
//! uninterrupted run. The engine runs in a child process (`touxiang-batch-fake`, this crate's
//! binary) so that it can be killed.

use std::path::{Path, PathBuf};

use touxiang_testkit::sample_csv;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Read `rows_done` from a checkpoint file, if it exists and parses.
fn ckpt_rows(path: &Path) -> Option<u64> {
    let b = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["rows_done"].as_u64()
}

fn child(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_touxiang-batch-fake"));
    c.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

fn kill_when(out: &Path, args: &[&str], at_least: u64) -> u64 {
    let ckpt = PathBuf::from(format!("{}.ckpt.json", out.display()));
    let mut proc = child(args).spawn().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        if let Some(n) = ckpt_rows(&ckpt) {
            if n >= at_least {
                break;
            }
        }
        if let Some(st) = proc.try_wait().unwrap() {
            panic!("child ended before the kill: {st}");
        }
        assert!(t0.elapsed().as_secs() < 120, "child too slow");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    proc.kill().unwrap(); // SIGKILL on Unix
    let st = proc.wait().unwrap();
    assert!(!st.success());
    ckpt_rows(&ckpt).unwrap()
}

#[test]
fn kill_9_and_resume_is_byte_identical_to_an_uninterrupted_run() {
    let d = dir();
    let input = d.path().join("in.csv");
    sample_csv(&input, 2000);
    let i = input.to_str().unwrap();

    // Uninterrupted reference (own cache).
    let reference = d.path().join("ref.csv");
    let st = child(&[
        "run",
        "--input",
        i,
        "--output",
        reference.to_str().unwrap(),
        "--chunk",
        "50",
        "--cache",
        d.path().join("ref.sqlite").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let out = d.path().join("out.csv");
    let o = out.to_str().unwrap();
    let cache = d.path().join("c.sqlite");
    let c = cache.to_str().unwrap();
    let slow = [
        "run",
        "--input",
        i,
        "--output",
        o,
        "--chunk",
        "50",
        "--cache",
        c,
        "--delay-ms",
        "15",
    ];
    let first = kill_when(&out, &slow, 300);
    let mut slow_resume = slow.to_vec();
    slow_resume.push("--resume");
    let second = kill_when(&out, &slow_resume, first + 400);
    assert!(second > first && second < 2000, "{first} {second}");
    assert!(!out.exists());

    let mut resume = vec![
        "run", "--input", i, "--output", o, "--chunk", "50", "--cache", c, "--resume",
    ];
    let done = child(&resume).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(summary["resumed_rows"].as_u64(), Some(second));
    assert_eq!(summary["counters"]["rows"].as_u64(), Some(2000));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
    assert!(!PathBuf::from(format!("{o}.ckpt.json")).exists());
    assert!(!PathBuf::from(format!("{o}.part")).exists());

    // Resuming again after completion simply redoes the run (no checkpoint) from the cache.
    resume.retain(|a| *a != "--resume");
    assert!(child(&resume).output().unwrap().status.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}
