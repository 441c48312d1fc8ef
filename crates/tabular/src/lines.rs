//! Physical lines of CSV and JSONL input (terminators, BOM, GB18030 decoding) and the decoding
//! of one field as UTF-8.

use std::collections::VecDeque;
use std::io::BufRead;

use crate::Encoding;

pub(crate) struct Lines<R> {
    rdr: R,
    pub(crate) encoding: Encoding,
    line_no: u64,
    pending: VecDeque<(u64, Vec<u8>)>,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(rdr: R, encoding: Encoding) -> Self {
        Lines {
            rdr,
            encoding,
            line_no: 0,
            pending: VecDeque::new(),
        }
    }

    /// Next physical line without its terminator (`\n` or `\r\n`), decoded to UTF-8 when the
    /// input is GB18030 (undecodable lines are kept as raw bytes and fail UTF-8 validation).
    pub(crate) fn next(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = Vec::new();
        if self.rdr.read_until(b'\n', &mut buf)? == 0 {
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
        if self.encoding == Encoding::Gb18030 {
            if let Some(s) =
                encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&buf)
            {
                buf = s.into_owned().into_bytes();
            }
        }
        Ok(Some((self.line_no, buf)))
    }

    /// Next line that is not blank.
    pub(crate) fn next_non_blank(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            match self.next()? {
                Some((_, l)) if is_blank(&l) => continue,
                other => return Ok(other),
            }
        }
    }

    /// Lines to be read again, in order, before the rest of the input.
    pub(crate) fn push_back(&mut self, lines: Vec<(u64, Vec<u8>)>) {
        for l in lines.into_iter().rev() {
            self.pending.push_front(l);
        }
    }
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_whitespace())
}

/// A cell's text: [`decode_field`], its lossy text with an encoding issue on `col` in `issues`
/// when it does not decode.
pub(crate) fn decode_cell(
    bytes: &[u8],
    encoding: Encoding,
    col: usize,
    issues: &mut Vec<crate::CellIssue>,
) -> String {
    decode_field(bytes, encoding).unwrap_or_else(|(lossy, reason)| {
        issues.push(crate::CellIssue {
            col,
            kind: crate::IssueKind::Encoding,
            reason,
        });
        lossy
    })
}

/// Decode one field as UTF-8; otherwise (lossy text, what is wrong).
pub(crate) fn decode_field(
    bytes: &[u8],
    encoding: Encoding,
) -> std::result::Result<String, (String, String)> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let reason = match encoding {
                Encoding::Gb18030 => "bytes are not valid GB18030".to_string(),
                Encoding::Utf8 => {
                    let mut r = format!("invalid UTF-8 at byte {} of the field", e.valid_up_to());
                    if let Some(g) =
                        encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes)
                    {
                        r.push_str(&format!(
                            " (it decodes as GBK: {g:?}; if the whole file is GBK, set the input encoding to gb18030)"
                        ));
                    }
                    r
                }
            };
            Err((lossy, reason))
        }
    }
}
