//! Printing results: aligned tables for people, JSON for scripts.

use std::io::Write;

/// Prints rows under headers, each column as wide as its widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    out.flush()
}

/// Values as a line of at most 60 marks (the last value of each stretch), scaled from the
/// lowest to the highest; a flat series sits mid-height.
pub(crate) fn sparkline(values: &[f64]) -> String {
    use crate::commands::profile::SPARK;
    let (lo, hi) =
        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let step = values.len().div_ceil(60).max(1);
    values
        .chunks(step)
        .map(|c| {
            let v = *c.last().expect("chunks are not empty");
            let i = if hi > lo { ((v - lo) / (hi - lo) * 7.0).round() as usize } else { 3 };
            SPARK[i.min(7)]
        })
        .collect()
}

/// Prints a value as pretty JSON.
pub(crate) fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // As an io::Error, so that a closed pipe (`| head`) is seen as one and ends quietly.
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(out.flush()?)
}

/// A JSON value as a table cell: strings bare, `-` for null or empty.
pub(crate) fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) if s.is_empty() => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A millisecond timestamp as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "-".to_string() };
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_in_utc() {
        assert_eq!(super::time(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(super::time(Some(1_795_795_200_000)), "2026-11-27 16:00:00");
        assert_eq!(super::time(Some(951_782_400_000 + 3_723_000)), "2000-02-29 01:02:03");
        assert_eq!(super::time(None), "-");
    }

    #[test]
    fn json_cells_read_plainly() {
        use serde_json::json;
        assert_eq!(super::cell(&json!("falls")), "falls");
        assert_eq!(super::cell(&json!("")), "-");
        assert_eq!(super::cell(&json!(null)), "-");
        assert_eq!(super::cell(&json!(3)), "3");
        assert_eq!(super::cell(&json!([1, 2])), "[1,2]");
    }
}
