//! Line reading shared by CSV and JSONL (terminators, BOM, GB18030 decoding) and the decoding
//! of one field as UTF-8.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::Cell;
use crate::error::BatchError;
use crate::options::InputEncoding;

pub(super) struct Lines {
    rdr: BufReader<File>,
    path: PathBuf,
    pub(super) encoding: InputEncoding,
    line_no: u64,
    pending: VecDeque<(u64, Vec<u8>)>,
}

impl Lines {
    pub(super) fn open(path: &Path, encoding: InputEncoding) -> Result<Lines, BatchError> {
        let f = File::open(path).map_err(|e| BatchError::io("cannot open input", path, e))?;
        Ok(Lines {
            rdr: BufReader::with_capacity(1 << 16, f),
            path: path.to_path_buf(),
            encoding,
            line_no: 0,
            pending: VecDeque::new(),
        })
    }

    /// Next physical line without its terminator (`\n` or `\r\n`), decoded to UTF-8 when the
    /// input is GB18030 (undecodable lines are kept as raw bytes and fail UTF-8 validation).
    pub(super) fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>, BatchError> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        let n = self
            .rdr
            .read_until(b'\n', &mut buf)
            .map_err(|e| BatchError::io("cannot read input", &self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if self.line_no == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        if self.encoding == InputEncoding::Gb18030 {
            if let Some(s) =
                encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&buf)
            {
                buf = s.into_owned().into_bytes();
            }
        }
        Ok(Some((self.line_no, buf)))
    }

    pub(super) fn push_back(&mut self, lines: Vec<(u64, Vec<u8>)>) {
        for l in lines.into_iter().rev() {
            self.pending.push_front(l);
        }
    }
}

pub(super) fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_whitespace())
}

/// Decode one field as UTF-8, explaining what is wrong otherwise.
pub(super) fn decode_field(bytes: &[u8], encoding: InputEncoding) -> Cell {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let reason = match encoding {
                InputEncoding::Gb18030 => "bytes are not valid GB18030".to_string(),
                InputEncoding::Utf8 => {
                    let mut r = format!("invalid UTF-8 at byte {} of the field", e.valid_up_to());
                    if let Some(g) =
                        encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes)
                    {
                        r.push_str(&format!(
                            " (it decodes as GBK: {:?}; if the whole file is GBK, set the input encoding to gb18030)",
                            g
                        ));
                    }
                    r
                }
            };
            Err((lossy, reason))
        }
    }
}
