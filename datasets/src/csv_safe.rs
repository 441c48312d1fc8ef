//! Spreadsheet formula injection ("CSV injection") protection for CSV exports.

use std::borrow::Cow;

/// A CSV cell made safe to open in a spreadsheet, following the OWASP guidance on CSV injection
/// (<https://owasp.org/www-community/attacks/CSV_Injection>): a text cell whose first character
/// is `=`, `+`, `-`, `@`, a tab (`\t`) or a carriage return (`\r`) gets a single quote `'`
/// prepended, so Excel, LibreOffice and Google Sheets show it as text instead of evaluating it as
/// a formula (`=HYPERLINK(...)`, `@SUM(...)`, DDE payloads).
///
/// A cell that parses as a finite `f64` (`-12.5`, `+3`, `-0.25`, `1e5`) is a number, not a
/// formula, and is returned unchanged, as is every other cell (the empty one included); only an
/// escaped cell allocates. Apply it to every text field (ids, codes, names, labels, free text)
/// written to a CSV file; the CSV writer's own quoting still applies on top. XLSX exports do not
/// need it: their cells are typed as strings.
pub fn csv_safe(cell: &str) -> Cow<'_, str> {
    let risky = matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky && !cell.parse::<f64>().is_ok_and(f64::is_finite) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_a_leading_quote() {
        for (cell, want) in [
            ("=1+1", "'=1+1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1+1", "'+1+1"),
            ("-1+1", "'-1+1"),
            ("-", "'-"),
            ("\tfoo", "'\tfoo"),
            ("\rfoo", "'\rfoo"),
            ("=采购钢材", "'=采购钢材"),
            // infinities and NaN parse as f64 but are not finite numbers
            ("-inf", "'-inf"),
            ("+NaN", "'+NaN"),
        ] {
            let got = csv_safe(cell);
            assert!(matches!(got, Cow::Owned(_)), "{cell:?}");
            assert_eq!(got, want, "{cell:?}");
        }
    }

    #[test]
    fn numbers_and_plain_text_are_unchanged() {
        for cell in [
            "-12.5",
            "+3",
            "-0.25",
            "1e5",
            "-1e5",
            "0",
            "",
            "采购热轧钢卷",
            "补充流动资金，第3批",
            "L00001",
            "C3120",
            "'=already quoted",
            "a=1+1",
        ] {
            let got = csv_safe(cell);
            assert!(matches!(got, Cow::Borrowed(_)), "{cell:?}");
            assert_eq!(got, cell);
        }
    }
}
