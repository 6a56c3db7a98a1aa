//! Request metrics and the Prometheus text exposition at `/metrics`.
//!
//! Per route template (never the raw path, so labels stay few), method and status: a request
//! counter and a latency histogram. Plus the process's CPU, memory and file descriptors read from
//! `/proc`, and the job queue's depth.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::AppState;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Counters and histograms of the requests served.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    fn render_requests(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP slipway_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE slipway_http_requests_total counter\n");
        for ((method, route, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "slipway_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str(
            "# HELP slipway_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE slipway_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in series.iter() {
            let labels =
                format!("method=\"{method}\",route=\"{}\",status=\"{status}\"", escape(route));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "slipway_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "slipway_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ =
                writeln!(out, "slipway_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(
                out,
                "slipway_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Times every request and opens its tracing span.
pub(crate) async fn track(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let span = tracing::info_span!(target: "server::request", "request", %method, path = %request.uri().path());
    let response = next.run(request).instrument(span.clone()).await;
    let route = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    let route = route.unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.observe(&method, &route, status, seconds);
    tracing::debug!(target: "server::request", parent: &span, status, ms = seconds * 1e3, "answered");
    response
}

/// Where the inner layer leaves the matched route template for the outer one (routing happens
/// between them, so the outer layer cannot see it on the request).
#[derive(Clone, Default)]
pub(crate) struct RouteSlot(Arc<Mutex<Option<String>>>);

/// Runs on matched routes only: records the route template (`/api/v1/jobs/{id}`).
pub(crate) async fn label_route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) =
        (request.extensions().get::<RouteSlot>(), request.extensions().get::<MatchedPath>())
    {
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.as_str().to_string());
    }
    next.run(request).await
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn exposition(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(4096);
    state.metrics.render_requests(&mut out);
    render_process(&mut out, &state);
    render_jobs(&mut out, &state).await;
    render_serving(&mut out, &state);
    // Gauges a deployment pushed; a store that does not answer leaves them out of this scrape.
    if let Ok(series) = state.gauges.series().await {
        monitor::gauges::render(&mut out, &series);
    }
    let _ = writeln!(out, "# HELP slipway_build_info Slipway's version.");
    let _ = writeln!(out, "# TYPE slipway_build_info gauge");
    let _ = writeln!(out, "slipway_build_info{{version=\"{}\"}} 1", crate::VERSION);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// Per endpoint variant (and shadow) and model version: requests by outcome, latency and
/// batch-size histograms, queue depth, requests in flight, shadow agreement.
/// The prediction log of this process: rows logged, written, dropped (buffer full), capped.
fn render_log(out: &mut String, state: &AppState) {
    let st = state.serving.log_stats();
    if st.logged + st.capped + st.dropped == 0 {
        return;
    }
    let _ = writeln!(out, "# HELP slipway_prediction_log_rows_total Prediction log rows by fate.");
    let _ = writeln!(out, "# TYPE slipway_prediction_log_rows_total counter");
    for (fate, n) in [
        ("logged", st.logged),
        ("written", st.written),
        ("dropped", st.dropped),
        ("capped", st.capped),
    ] {
        let _ = writeln!(out, "slipway_prediction_log_rows_total{{fate=\"{fate}\"}} {n}");
    }
    let _ =
        writeln!(out, "# HELP slipway_prediction_log_buffered_rows Rows waiting to be written.");
    let _ = writeln!(out, "# TYPE slipway_prediction_log_buffered_rows gauge");
    let _ = writeln!(out, "slipway_prediction_log_buffered_rows {}", st.buffered);
    let _ = writeln!(out, "# HELP slipway_prediction_log_segments_total Segments written.");
    let _ = writeln!(out, "# TYPE slipway_prediction_log_segments_total counter");
    let _ = writeln!(out, "slipway_prediction_log_segments_total {}", st.segments);
}

fn render_serving(out: &mut String, state: &AppState) {
    use std::sync::atomic::Ordering::Relaxed;
    render_log(out, state);
    let served = state.serving.snapshot();
    // (live, role): every variant answers, a shadow only compares.
    let live: Vec<(&std::sync::Arc<serve::Live>, &str)> = served
        .iter()
        .flat_map(|s| {
            let shadow = s.shadow.iter().map(|l| (l, "shadow"));
            s.variants.iter().map(|l| (l, "serve")).chain(shadow)
        })
        .collect();
    if live.is_empty() {
        return;
    }
    let labels = |(l, role): &(&std::sync::Arc<serve::Live>, &str)| {
        format!(
            "endpoint=\"{}\",model=\"{}\",version=\"{}\",variant=\"{}\",role=\"{role}\"",
            escape(&l.endpoint),
            escape(&l.version.name),
            l.version.version,
            escape(&l.variant),
        )
    };
    let _ = writeln!(out, "# HELP slipway_serve_requests_total Prediction requests by outcome.");
    let _ = writeln!(out, "# TYPE slipway_serve_requests_total counter");
    for l in &live {
        let s = &l.0.stats;
        for (outcome, n) in [
            ("ok", &s.ok),
            ("bad_input", &s.bad_input),
            ("overloaded", &s.overloaded),
            ("failed", &s.failed),
        ] {
            let _ = writeln!(
                out,
                "slipway_serve_requests_total{{{},outcome=\"{outcome}\"}} {}",
                labels(l),
                n.load(Relaxed)
            );
        }
    }
    let gauge =
        |out: &mut String, name: &str, help: &str, pick: &dyn Fn(&serve::Stats) -> usize| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for l in &live {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(l), pick(&l.0.stats));
            }
        };
    gauge(out, "slipway_serve_queue_depth", "Requests waiting for a batch.", &|s| {
        s.queue_depth.load(Relaxed)
    });
    gauge(
        out,
        "slipway_serve_in_flight",
        "Requests an endpoint holds: queued, batched or answered.",
        &|s| s.in_flight.load(Relaxed),
    );
    let histogram = |out: &mut String,
                     name: &str,
                     help: &str,
                     bounds: &[f64],
                     pick: &dyn Fn(&serve::Stats) -> &serve::Histogram| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for l in &live {
            let h = pick(&l.0.stats);
            let mut cumulative = 0;
            for (i, b) in bounds.iter().enumerate() {
                cumulative += h.counts[i].load(Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{},le=\"{b}\"}} {cumulative}", labels(l));
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{},le=\"+Inf\"}} {count}", labels(l));
            let _ = writeln!(
                out,
                "{name}_sum{{{}}} {}",
                labels(l),
                h.sum_micro.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "{name}_count{{{}}} {count}", labels(l));
        }
    };
    histogram(
        out,
        "slipway_serve_request_duration_seconds",
        "Prediction latency, queue wait included.",
        serve::LATENCY_BUCKETS_S,
        &|s| &s.latency,
    );
    histogram(out, "slipway_serve_batch_size", "Rows per model run.", serve::BATCH_BUCKETS, &|s| {
        &s.batch_rows
    });
    let shadows: Vec<_> = live.iter().filter(|(_, role)| *role == "shadow").collect();
    if shadows.is_empty() {
        return;
    }
    for (name, help, pick) in [
        (
            "slipway_serve_shadow_rows_total",
            "Rows a shadow answered and compared with the answering variant.",
            (|s: &serve::Stats| s.shadow_rows.load(Relaxed)) as fn(&serve::Stats) -> u64,
        ),
        (
            "slipway_serve_shadow_agreed_rows_total",
            "Rows whose first output (the label) the shadow and the answering variant agreed on.",
            |s: &serve::Stats| s.shadow_agreed.load(Relaxed),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for l in &shadows {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(l), pick(&l.0.stats));
        }
    }
}

fn render_process(out: &mut String, state: &AppState) {
    let mut gauge = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    if let Some(stat) = monitor::gauges::proc_stat() {
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stat.cpu_seconds,
        );
        gauge(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stat.vsize as f64,
        );
        gauge(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            stat.rss_bytes as f64,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            entries.count() as f64,
        );
    }
    if let Some(max) = read_max_fds() {
        gauge("process_max_fds", "gauge", "Maximum number of open file descriptors.", max);
    }
    let start = state
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    gauge(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        start,
    );
}

async fn render_jobs(out: &mut String, state: &AppState) {
    let Ok(counts) = state.queue.counts().await else { return };
    let _ = writeln!(out, "# HELP slipway_jobs Jobs in the queue, by status.");
    let _ = writeln!(out, "# TYPE slipway_jobs gauge");
    for (status, n) in counts {
        let _ = writeln!(out, "slipway_jobs{{status=\"{}\"}} {n}", status.as_str());
    }
}

fn read_max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe("GET", "/health", 200, 0.0007);
        m.observe("GET", "/health", 200, 0.2);
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains(
            "slipway_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 2"
        ));
        assert!(out.contains("route=\"/health\",status=\"200\",le=\"0.0005\"} 0"));
        assert!(out.contains("route=\"/health\",status=\"200\",le=\"0.001\"} 1"));
        assert!(out.contains("route=\"/health\",status=\"200\",le=\"0.25\"} 2"));
        assert!(out.contains("route=\"/health\",status=\"200\",le=\"+Inf\"} 2"));
    }

    #[test]
    fn process_stats_are_read() {
        let stat = monitor::gauges::proc_stat().expect("reading /proc/self/stat");
        assert!(stat.rss_bytes > 0 && stat.vsize >= stat.rss_bytes);
    }
}
