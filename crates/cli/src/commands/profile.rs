//! Printing a version's profile: one line per column with a sparkline, or one column in full.

use serde_json::json;
use slipway_data::profile::{ColumnProfile, Profile};
use slipway_data::{Version, profile::QuantileSketch};

use crate::Global;
use crate::output::table;

pub(crate) const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

pub(crate) fn print(
    v: &Version,
    profile: &Profile,
    only: Option<&str>,
    global: &Global,
) -> anyhow::Result<()> {
    let columns: Vec<&ColumnProfile> = match only {
        Some(name) => vec![profile.column(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no column '{name}' (it has: {})",
                v.label(),
                profile.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?],
        None => profile.columns.iter().collect(),
    };
    if global.json {
        let out: Vec<_> = columns.iter().map(|c| c.summary(20, 10)).collect();
        return crate::output::json(&json!({
            "version": v.label(), "rows": profile.rows, "columns": out,
        }));
    }
    if let [c] = columns.as_slice()
        && only.is_some()
    {
        return print_one(v, profile, c);
    }
    println!("{}: {} rows × {} columns", v.label(), profile.rows, profile.columns.len());
    println!();
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            let n = c.numeric.as_ref();
            let stat = |f: &dyn Fn(&slipway_data::profile::Numeric) -> Option<f64>| {
                n.and_then(f).map(num).unwrap_or_default()
            };
            let shape = match n {
                Some(n) if n.finite > 0 => sparkline(&n.histogram(16)),
                _ => top_text(c, 3),
            };
            vec![
                c.name.clone(),
                c.dtype.as_str().into(),
                c.count.to_string(),
                c.nulls.to_string(),
                distinct(c),
                stat(&|n| n.min),
                stat(&|n| n.mean()),
                stat(&|n| n.std()),
                stat(&|n| n.quantile(0.5)),
                stat(&|n| n.max),
                shape,
            ]
        })
        .collect();
    table(
        &[
            "COLUMN",
            "TYPE",
            "COUNT",
            "NULLS",
            "DISTINCT",
            "MIN",
            "MEAN",
            "STD",
            "MEDIAN",
            "MAX",
            "DISTRIBUTION",
        ],
        &rows,
    )?;
    Ok(())
}

fn print_one(v: &Version, profile: &Profile, c: &ColumnProfile) -> anyhow::Result<()> {
    println!("{} · {} ({}), {} rows", v.label(), c.name, c.dtype.as_str(), profile.rows);
    let mut facts = vec![
        ("values", c.count.to_string()),
        ("nulls", c.nulls.to_string()),
        ("distinct", distinct(c)),
    ];
    if let Some(n) = &c.numeric {
        facts.push(("NaN / infinite", format!("{} / {}", n.nan, n.infinite)));
        for (k, val) in [("min", n.min), ("mean", n.mean()), ("std", n.std()), ("max", n.max)] {
            facts.push((k, val.map(num).unwrap_or_else(|| "-".into())));
        }
        let qs: Vec<String> = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
            .iter()
            .map(|q| format!("p{}={}", q * 100.0, n.quantile(*q).map(num).unwrap_or_default()))
            .collect();
        facts
            .push(("quantiles", format!("{} (±{}%)", qs.join(" "), QuantileSketch::ALPHA * 100.0)));
    }
    if c.frequent.is_some() {
        facts.push(("top values", top_text(c, 10)));
    }
    println!();
    let rows: Vec<Vec<String>> = facts.into_iter().map(|(k, v)| vec![k.into(), v]).collect();
    table(&["FIELD", "VALUE"], &rows)?;
    if let Some(n) = &c.numeric
        && n.finite > 0
    {
        println!();
        let bins = n.histogram(20);
        let most = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1);
        let rows: Vec<Vec<String>> = bins
            .iter()
            .map(|(lo, hi, count)| {
                let width = (*count as f64 / most as f64 * 40.0).round() as usize;
                vec![format!("{} – {}", num(*lo), num(*hi)), count.to_string(), "█".repeat(width)]
            })
            .collect();
        table(&["BIN", "COUNT", ""], &rows)?;
    }
    Ok(())
}

fn distinct(c: &ColumnProfile) -> String {
    if c.distinct_is_exact() {
        c.distinct_count().to_string()
    } else {
        format!("~{}", c.distinct_count())
    }
}

fn top_text(c: &ColumnProfile, n: usize) -> String {
    let Some(f) = &c.frequent else { return String::new() };
    let mut parts: Vec<String> = f.top(n).iter().map(|(v, k)| format!("{v} {k}")).collect();
    if f.counts.len() > n {
        parts.push("…".into());
    }
    parts.join(", ")
}

fn sparkline(bins: &[(f64, f64, u64)]) -> String {
    let most = bins.iter().map(|b| b.2).max().unwrap_or(0);
    if most == 0 {
        return String::new();
    }
    bins.iter()
        .map(|b| {
            if b.2 == 0 { ' ' } else { SPARK[((b.2 as f64 / most as f64) * 7.0).round() as usize] }
        })
        .collect()
}

/// A number in at most ~6 significant characters.
pub(crate) fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if x.fract() == 0.0 && x.abs() < 1e9 {
        return format!("{x:.0}");
    }
    let a = x.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{x:.3e}");
    }
    let digits = (4 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_short() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1280.0), "1280");
        assert_eq!(num(1.23456789), "1.2346");
        assert_eq!(num(-0.25), "-0.25");
        assert_eq!(num(123456.789), "123457");
        assert_eq!(num(1.5e-7), "1.500e-7");
    }

    #[test]
    fn sparklines_scale_to_the_fullest_bin() {
        assert_eq!(sparkline(&[(0.0, 1.0, 1), (1.0, 2.0, 0), (2.0, 3.0, 7)]), "▂ █");
    }
}
