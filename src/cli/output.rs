//! What the verbs print: the API's JSON for machines (`--output json`), aligned tables and short
//! lines for people.

use chrono::{DateTime, Utc};

use super::{Failure, failed};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Prints `value` as the only thing on stdout, pretty, so `jq` and people can both read it.
pub fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| failed(e.into()))?;
    emit(&format!("{text}\n"))
}

/// Writes `text` to stdout. A reader that went away (`| head`) is not the verb's failure: the
/// rest is dropped and the exit code still says how the verb ended. Any other write error (a
/// full disk behind a redirect) is.
pub fn emit(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(failed(anyhow::anyhow!("writing to standard output: {e}")))
        }
        _ => Ok(()),
    }
}

/// Columns aligned on the widest cell; numbers read best right-aligned, so columns can be.
pub struct Table {
    headers: Vec<String>,
    right_aligned: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        Table {
            right_aligned: vec![false; headers.len()],
            headers,
            rows: Vec::new(),
        }
    }

    /// Right-aligns the columns at these positions.
    pub fn right(mut self, columns: &[usize]) -> Self {
        for &column in columns {
            if let Some(slot) = self.right_aligned.get_mut(column) {
                *slot = true;
            }
        }
        self
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, each line indented by `indent` and ending in a newline; no trailing blanks.
    pub fn render(&self, indent: &str) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in self.rows.iter().chain([&self.headers]) {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in [&self.headers].into_iter().chain(&self.rows) {
            let mut text = String::from(indent);
            for (column, width) in widths.iter().enumerate() {
                let cell = line.get(column).map_or("", String::as_str);
                let pad = width.saturating_sub(cell.chars().count());
                if column > 0 {
                    text.push_str("  ");
                }
                if self.right_aligned.get(column).copied().unwrap_or(false) {
                    text.extend(std::iter::repeat_n(' ', pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A rate or count with one decimal, `-` where the API has no value.
pub fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// A time as people read it in a table: UTC, to the second.
pub fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Milliseconds since the epoch as [`time`] prints them.
pub fn time_ms(at_ms: i64) -> String {
    DateTime::from_timestamp_millis(at_ms).map_or_else(|| at_ms.to_string(), |at| time(&at))
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut table = Table::new(["NAME", "SHARES", "NOTE"]).right(&[1]);
        table.row(["FS1", "300", ""]);
        table.row(["FileServer2", "7", "x"]);
        assert_eq!(
            table.render("  "),
            "  NAME         SHARES  NOTE\n  FS1             300\n  FileServer2       7  x\n"
        );
    }
}
