//! Writing the book as CSV (canonical header plus a `branch` attribute column).

use std::path::Path;

use super::{generate, SynthLoan, SynthSpec};
use crate::error::Result;

/// Write the book as CSV with the canonical header plus a `branch` attribute column; returns rows.
pub fn write_csv(spec: &SynthSpec, path: &Path) -> Result<u64> {
    let mut w = CsvBook::create(path)?;
    let mut res = Ok(());
    generate(spec, |r| {
        if res.is_ok() {
            res = w.write(r);
        }
    });
    res?;
    w.finish()
}

/// Write already generated rows as CSV (same layout as [`write_csv`]); returns rows.
pub fn write_rows_csv<'a>(
    rows: impl IntoIterator<Item = &'a SynthLoan>,
    path: &Path,
) -> Result<u64> {
    let mut w = CsvBook::create(path)?;
    for r in rows {
        w.write(r)?;
    }
    w.finish()
}

struct CsvBook {
    w: csv::Writer<std::io::BufWriter<std::fs::File>>,
    n: u64,
    buf: [String; 3],
}

fn csv_err(e: csv::Error) -> crate::error::PortfolioError {
    crate::error::PortfolioError::Csv(e.to_string())
}

impl CsvBook {
    fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path)?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
        w.write_record([
            "loan_id",
            "purpose_text",
            "amount",
            "balance",
            "overdue_days",
            "region_code",
            "customer_type",
            "product",
            "issue_date",
            "as_of_date",
            "industry_code",
            "branch",
        ])
        .map_err(csv_err)?;
        Ok(CsvBook {
            w,
            n: 0,
            buf: Default::default(),
        })
    }

    fn write(&mut self, r: &SynthLoan) -> Result<()> {
        use std::fmt::Write as _;
        let [a, b, d] = &mut self.buf;
        a.clear();
        b.clear();
        d.clear();
        let _ = write!(a, "{}", r.amount);
        let _ = write!(b, "{}", r.balance);
        let _ = write!(d, "{}", r.overdue_days);
        self.w
            .write_record([
                r.loan_id.as_str(),
                &r.purpose_text,
                a,
                b,
                d,
                &r.region_code,
                r.customer_type,
                r.product,
                &r.issue_date,
                &r.as_of_date,
                &r.industry_code,
                &r.branch,
            ])
            .map_err(csv_err)?;
        self.n += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.w.flush()?;
        Ok(self.n)
    }
}
