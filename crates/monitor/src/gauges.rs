//! Custom gauges: numbers a deployment pushes about itself — a camera's power state, a ward's
//! bandwidth — kept as time series in the metadata store, their latest values exposed on
//! `/metrics` beside Slipway's own, ready for alert rules.
//!
//! A series is a name and a set of labels, as in Prometheus: `camera_power_state{camera=
//! "ward3-2"}`. Names and label names follow Prometheus' grammar; names Slipway uses itself
//! (`slipway_`, `process_`) are refused, so a pushed gauge never shadows a built-in metric.

use std::collections::BTreeMap;

use serde::Serialize;
use slipway_core::{Db, Migration, now_ms};
use sqlx::Row;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "gauges",
    sqlite: include_str!("../migrations/0001_gauges.sql"),
    postgres: include_str!("../migrations/0001_gauges.sql"),
}];

/// Points accepted in one push at most.
pub const MAX_POINTS: usize = 10_000;
/// Series kept at most (every scrape reads them all).
pub const MAX_SERIES: i64 = 10_000;
/// Points one history answer holds at most (the newest).
pub const MAX_HISTORY: i64 = 100_000;
const MAX_LABELS: usize = 16;
const MAX_LABEL_VALUE: usize = 256;

/// One value of a series at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the epoch; now when not given.
    pub at_ms: Option<i64>,
}

/// A series and its latest value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub at_ms: i64,
    pub points: u64,
}

/// A series' values over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `[at_ms, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Core(#[from] slipway_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Prometheus' metric and label name grammar.
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a pushed point, naming what is wrong.
pub fn check(p: &Point) -> std::result::Result<(), String> {
    if ["slipway_", "process_"].iter().any(|r| p.name.starts_with(r)) && valid_name(&p.name) {
        return Err(format!(
            "gauge name '{}': names starting slipway_ or process_ are Slipway's own",
            p.name
        ));
    }
    check_shape(p)
}

/// Checks a point's name, labels and value.
fn check_shape(p: &Point) -> std::result::Result<(), String> {
    if !valid_name(&p.name) || p.name.len() > 200 {
        return Err(format!(
            "gauge name '{}' is not a metric name (letters, digits and _, not starting with a digit)",
            p.name
        ));
    }
    if p.labels.len() > MAX_LABELS {
        return Err(format!("gauge '{}': at most {MAX_LABELS} labels", p.name));
    }
    for (k, v) in &p.labels {
        if !valid_name(k) || k.starts_with("__") || k.len() > 64 {
            return Err(format!("gauge '{}': label name '{k}' is not a label name", p.name));
        }
        if v.len() > MAX_LABEL_VALUE {
            return Err(format!(
                "gauge '{}': label {k} is longer than {MAX_LABEL_VALUE} bytes",
                p.name
            ));
        }
    }
    if !p.value.is_finite() {
        return Err(format!("gauge '{}': the value must be a finite number", p.name));
    }
    if p.at_ms.is_some_and(|t| t < 0) {
        return Err(format!("gauge '{}': at_ms must not be negative", p.name));
    }
    Ok(())
}

/// Labels as stored: canonical JSON (sorted keys), so that a series has one key.
fn labels_key(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).expect("labels serialise")
}

fn labels_of(key: &str) -> BTreeMap<String, String> {
    serde_json::from_str(key).unwrap_or_default()
}

/// How long points are kept (each series' latest value stays regardless).
pub const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// The custom gauges of a metadata store.
#[derive(Debug, Clone)]
pub struct Gauges {
    db: Db,
    /// When points were last pruned, ms since the epoch.
    pruned_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Gauges {
    /// Brings the schema up to date.
    pub async fn open(db: Db) -> Result<Gauges> {
        db.migrate("monitor", MIGRATIONS).await?;
        Ok(Gauges { db, pruned_ms: Default::default() })
    }

    /// Stores points, all or none: every point is checked before anything is written.
    pub async fn push(&self, points: &[Point]) -> Result<usize> {
        self.store(points, false).await
    }

    /// Stores series of Slipway's own (named `slipway_…`, which pushes may not use).
    pub async fn record_own(&self, points: &[Point]) -> Result<usize> {
        self.store(points, true).await
    }

    async fn store(&self, points: &[Point], own: bool) -> Result<usize> {
        if points.is_empty() {
            return Err(Error::Invalid("no points to push".into()));
        }
        if points.len() > MAX_POINTS {
            return Err(Error::Invalid(format!("at most {MAX_POINTS} points in one push")));
        }
        let now = now_ms();
        for p in points {
            match own {
                true => check_shape(p),
                false => check(p),
            }
            .map_err(Error::Invalid)?;
            // A point from the future would stay "latest" for good.
            if p.at_ms.is_some_and(|t| t > now + 3_600_000) {
                return Err(Error::Invalid(format!(
                    "gauge '{}': at_ms is more than an hour ahead of the server's clock (milliseconds since the epoch?)",
                    p.name
                )));
            }
        }
        // Series in one order, so that concurrent pushes lock rows alike (no deadlock).
        let mut points: Vec<&Point> = points.iter().collect();
        points.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        let mut tx = self.db.begin_write().await?;
        // At the cap, a push may add points to existing series only. Slipway's own series
        // neither count nor are held back.
        let series: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM monitor_gauges WHERE substr(name, 1, 8) <> 'slipway_'",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if !own && series + points.len() as i64 > MAX_SERIES {
            let mut new = 0i64;
            let mut seen = std::collections::HashSet::new();
            for p in &points {
                if !seen.insert((&p.name, &p.labels)) {
                    continue;
                }
                let exists = sqlx::query(
                    "SELECT 1 AS one FROM monitor_gauges WHERE name = $1 AND labels = $2",
                )
                .bind(&p.name)
                .bind(labels_key(&p.labels))
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                new += i64::from(!exists);
            }
            if series + new > MAX_SERIES {
                return Err(Error::Invalid(format!(
                    "at most {MAX_SERIES} gauge series are kept; this push would add {new} to {series}"
                )));
            }
        }
        for p in &points {
            let at = p.at_ms.unwrap_or(now);
            let key = labels_key(&p.labels);
            sqlx::query(
                "INSERT INTO monitor_gauge_points (name, labels, at_ms, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name, labels, at_ms) DO UPDATE SET value = excluded.value",
            )
            .bind(&p.name)
            .bind(&key)
            .bind(at)
            .bind(p.value)
            .execute(&mut *tx)
            .await?;
            // The latest value per series, for scrapes: a later point wins, an earlier one
            // (sent late) only adds to the history.
            sqlx::query(
                "INSERT INTO monitor_gauges (name, labels, at_ms, value, points) VALUES ($1, $2, $3, $4, 1) \
                 ON CONFLICT (name, labels) DO UPDATE SET \
                 value = CASE WHEN excluded.at_ms >= monitor_gauges.at_ms THEN excluded.value ELSE monitor_gauges.value END, \
                 at_ms = CASE WHEN excluded.at_ms >= monitor_gauges.at_ms THEN excluded.at_ms ELSE monitor_gauges.at_ms END, \
                 points = monitor_gauges.points + 1",
            )
            .bind(&p.name)
            .bind(&key)
            .bind(at)
            .bind(p.value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        // At most hourly, points past the retention go.
        let last = self.pruned_ms.load(std::sync::atomic::Ordering::Relaxed);
        if now - last > 3600 * 1000
            && self
                .pruned_ms
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
            && let Err(e) = self.prune(now - KEEP_MS).await
        {
            // The points are stored; pruning is tried again within the hour.
            tracing::warn!(target: "monitor::gauges", error = %e, "pruning old gauge points");
        }
        Ok(points.len())
    }

    /// Every series with its latest value, by name and labels.
    pub async fn series(&self) -> Result<Vec<Series>> {
        let rows = sqlx::query(
            "SELECT name, labels, at_ms, value, points FROM monitor_gauges ORDER BY name, labels",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Series {
                    name: r.try_get("name")?,
                    labels: labels_of(&r.try_get::<String, _>("labels")?),
                    value: r.try_get("value")?,
                    at_ms: r.try_get("at_ms")?,
                    points: r.try_get::<i64, _>("points")? as u64,
                })
            })
            .collect()
    }

    /// The series named `name` since `since_ms`, oldest point first; at most [`MAX_HISTORY`]
    /// points in all (the newest).
    pub async fn history(&self, name: &str, since_ms: i64) -> Result<Vec<History>> {
        let mut rows = sqlx::query(
            "SELECT labels, at_ms, value FROM monitor_gauge_points WHERE name = $1 AND at_ms >= $2 \
             ORDER BY at_ms DESC LIMIT $3",
        )
        .bind(name)
        .bind(since_ms)
        .bind(MAX_HISTORY)
        .fetch_all(self.db.pool())
        .await?;
        // Back in series order, oldest first within each.
        let key = |r: &sqlx::any::AnyRow| -> (String, i64) {
            (r.try_get("labels").unwrap_or_default(), r.try_get("at_ms").unwrap_or_default())
        };
        rows.sort_by_key(key);
        let mut out: Vec<History> = Vec::new();
        for r in &rows {
            let key: String = r.try_get("labels")?;
            let labels = labels_of(&key);
            let point = (r.try_get("at_ms")?, r.try_get("value")?);
            match out.last_mut() {
                Some(h) if h.labels == labels => h.points.push(point),
                _ => out.push(History { name: name.to_string(), labels, points: vec![point] }),
            }
        }
        Ok(out)
    }

    /// Removes points older than `before_ms` (the latest value of each series stays).
    pub async fn prune(&self, before_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM monitor_gauge_points WHERE at_ms < $1")
            .bind(before_ms)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// This process's CPU time and memory, from `/proc/self/stat` (Linux).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStat {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    pub vsize: u64,
    pub rss_bytes: u64,
}

/// Clock ticks per second of `/proc/self/stat` times; 100 on every Linux this runs on.
const CLOCK_TICKS: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

/// Reads this process's CPU time and memory; None where `/proc` is not there.
pub fn proc_stat() -> Option<ProcStat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // After ')' field 0 is state (3rd in proc(5)); utime is 14th, stime 15th, vsize 23rd, rss 24th.
    let utime = num(11)?;
    let stime = num(12)?;
    Some(ProcStat {
        cpu_seconds: (utime + stime) as f64 / CLOCK_TICKS,
        vsize: num(20)?,
        rss_bytes: num(21)? * PAGE_SIZE,
    })
}

/// The series a server keeps of its own process, so that alert rules (gauge rules) and the
/// gauges page see CPU and memory like any other gauge: `slipway_process_cpu_cores` (CPU
/// seconds per second since the last sample; 1 is one core busy) and
/// `slipway_process_resident_memory_bytes`, each labelled with the process's `replica` id.
#[derive(Debug, Default)]
pub struct ProcessSampler {
    last: Option<(std::time::Instant, f64)>,
}

/// Name of the CPU series a server records of itself.
pub const PROCESS_CPU: &str = "slipway_process_cpu_cores";
/// Name of the memory series a server records of itself.
pub const PROCESS_MEMORY: &str = "slipway_process_resident_memory_bytes";

impl ProcessSampler {
    /// This moment's points: memory always, CPU from the second sample on.
    pub fn sample(&mut self, replica: &str) -> Vec<Point> {
        let Some(stat) = proc_stat() else { return Vec::new() };
        let now = std::time::Instant::now();
        let labels: BTreeMap<String, String> =
            [("replica".to_string(), replica.to_string())].into();
        let point = |name: &str, value: f64| Point {
            name: name.to_string(),
            labels: labels.clone(),
            value,
            at_ms: None,
        };
        let mut points = vec![point(PROCESS_MEMORY, stat.rss_bytes as f64)];
        if let Some((then, cpu)) = self.last {
            let seconds = now.duration_since(then).as_secs_f64();
            if seconds > 0.0 {
                points.push(point(PROCESS_CPU, ((stat.cpu_seconds - cpu) / seconds).max(0.0)));
            }
        }
        self.last = Some((now, stat.cpu_seconds));
        points
    }
}

/// The latest values in Prometheus' text format, one `# TYPE` per name; without timestamps, as
/// Prometheus' own push gateway does (a scrape takes them as current).
pub fn render(out: &mut String, series: &[Series]) {
    use std::fmt::Write;
    let mut last = "";
    for s in series {
        if s.name != last {
            let _ = writeln!(out, "# HELP {} A gauge pushed through /api/v1/gauges.", s.name);
            let _ = writeln!(out, "# TYPE {} gauge", s.name);
            last = &s.name;
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| {
                let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                format!("{k}=\"{v}\"")
            })
            .collect();
        let labels =
            if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(out, "{}{labels} {}", s.name, s.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, labels: &[(&str, &str)], value: f64) -> Point {
        Point {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
            at_ms: None,
        }
    }

    #[test]
    fn names_labels_and_values_are_checked() {
        assert!(check(&point("camera_power_state", &[("camera", "ward3-2")], 1.0)).is_ok());
        for (p, says) in [
            (point("9lives", &[], 1.0), "not a metric name"),
            (point("bad-name", &[], 1.0), "not a metric name"),
            (point("slipway_requests", &[], 1.0), "Slipway's own"),
            (point("ok", &[("bad label", "x")], 1.0), "not a label name"),
            (point("ok", &[("__name__", "x")], 1.0), "not a label name"),
            (point("ok", &[], f64::NAN), "finite"),
        ] {
            assert!(check(&p).unwrap_err().contains(says), "{p:?}");
        }
    }

    #[test]
    fn rendering_escapes_label_values() {
        let mut out = String::new();
        let s = Series {
            name: "bandwidth_mbps".into(),
            labels: [("ward".to_string(), "a\"b\\c".to_string())].into(),
            value: 12.5,
            at_ms: 1000,
            points: 1,
        };
        render(&mut out, &[s]);
        assert!(out.contains("# TYPE bandwidth_mbps gauge\n"));
        assert!(out.contains("bandwidth_mbps{ward=\"a\\\"b\\\\c\"} 12.5\n"), "{out}");
    }
}
