//! `slipway loadtest URL`: an HTTP load generator for endpoints (Slipway's or any other), so
//! that a benchmark drives every server the same way. Closed loop by default (`--concurrency`
//! clients, each sending its next request when the last is answered); open loop with `--rate`
//! (requests are released on a fixed schedule whatever the answers, by an OS thread that never
//! waits for one, up to `--concurrency` in flight; latency counts from the release, so a stalled
//! server cannot hide its queueing).
//!
//! `http://` targets are driven by a small keep-alive HTTP/1.1 client of its own (one request
//! written from prepared bytes, the answer's head parsed with httparse, the body skipped by
//! length or chunks), as wrk does: a load generator that shares the server's cores should cost
//! it as little as possible. `https://` goes through reqwest.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Global;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    slipway loadtest http://127.0.0.1:5001/invocations --body row.json --concurrency 16 --duration 10\n  \
    slipway loadtest http://127.0.0.1:5001/v2/models/falls/infer --body oip.json --rate 20000 \\\n      \
    --concurrency 512 --duration 30 --json\n  \
    slipway loadtest http://127.0.0.1:5001/endpoints/a/invocations \\\n      \
    http://127.0.0.1:5001/endpoints/b/invocations --body row.json --rate 5000 --concurrency 32")]
pub(crate) struct LoadtestArgs {
    /// The URL to POST to; with several, requests take turns among them (the same load, the same
    /// moments), and latency is given per URL too: a paired comparison
    #[arg(required = true, num_args = 1..)]
    urls: Vec<String>,
    /// The request body (a file); sent as --content-type
    #[arg(long)]
    body: PathBuf,
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// Requests in flight at most (closed loop: the number of clients)
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds to measure
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (connections opened, caches warm)
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: send this many requests per second on a fixed schedule
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Default, Clone)]
struct Tally {
    /// Latencies of 2xx answers, µs.
    ok_us: Vec<u32>,
    overloaded: u64,
    overloaded_with_retry_after: u64,
    other_status: u64,
    errors: u64,
    /// Open loop: scheduled sends skipped because `concurrency` requests were in flight.
    skipped: u64,
    /// 2xx answers by the variant their `x-slipway-variant` header names.
    variants: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.ok_us.extend(o.ok_us);
        self.overloaded += o.overloaded;
        self.overloaded_with_retry_after += o.overloaded_with_retry_after;
        self.other_status += o.other_status;
        self.errors += o.errors;
        self.skipped += o.skipped;
        for (v, n) in o.variants {
            *self.variants.entry(v).or_default() += n;
        }
    }
}

struct Shot {
    http: reqwest::Client,
    /// For `http://` targets: the address and the whole request, ready to write.
    raw: Option<(String, Vec<u8>)>,
    url: String,
    body: bytes::Bytes,
    content_type: String,
}

/// A keep-alive connection of the raw client, and what it has read and not yet used.
#[derive(Default)]
struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// What one answer said: its status, whether it carried `Retry-After`, and the variant that
/// answered (a Slipway endpoint's `x-slipway-variant`).
type Answer = (u16, bool, Option<String>);

/// Sends one request on `conn` (connecting first if it has no stream) and reads the whole answer.
async fn exchange(addr: &str, request: &[u8], conn: &mut Conn) -> std::io::Result<Answer> {
    let stream = match &mut conn.stream {
        Some(s) => s,
        None => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            conn.buf.clear();
            conn.stream.insert(s)
        }
    };
    stream.write_all(request).await?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    // The head.
    let (status, retry_after, variant, close, body) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&conn.buf).map_err(|e| bad(&e.to_string()))? {
            httparse::Status::Complete(head_len) => {
                let status = response.code.unwrap_or(0);
                let (mut retry_after, mut close, mut body) = (false, false, Body::Empty);
                let mut variant = None;
                for h in response.headers.iter() {
                    let value = std::str::from_utf8(h.value).unwrap_or("").trim();
                    if h.name.eq_ignore_ascii_case("retry-after") {
                        retry_after = true;
                    } else if h.name.eq_ignore_ascii_case(VARIANT_HEADER) {
                        variant = Some(value.to_string());
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = value.eq_ignore_ascii_case("close");
                    } else if h.name.eq_ignore_ascii_case("content-length") {
                        body = Body::Length(value.parse().map_err(|_| bad("bad content-length"))?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                        && value.eq_ignore_ascii_case("chunked")
                    {
                        body = Body::Chunked;
                    }
                }
                conn.buf.drain(..head_len);
                break (status, retry_after, variant, close, body);
            }
            httparse::Status::Partial => fill(stream, &mut conn.buf).await?,
        }
    };
    // The body, skipped.
    match body {
        Body::Empty => {}
        Body::Length(n) => {
            while conn.buf.len() < n {
                fill(stream, &mut conn.buf).await?;
            }
            conn.buf.drain(..n);
        }
        Body::Chunked => loop {
            let Some(eol) = conn.buf.windows(2).position(|w| w == b"\r\n") else {
                fill(stream, &mut conn.buf).await?;
                continue;
            };
            let line = std::str::from_utf8(&conn.buf[..eol]).map_err(|_| bad("bad chunk"))?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            // The size line, the chunk and its CRLF (the last chunk: the closing CRLF).
            let need = eol + 2 + size + 2;
            while conn.buf.len() < need {
                fill(stream, &mut conn.buf).await?;
            }
            conn.buf.drain(..need);
            if size == 0 {
                break;
            }
        },
    }
    if close {
        conn.stream = None;
    }
    Ok((status, retry_after, variant))
}

/// The header naming the variant of a split endpoint that answered.
const VARIANT_HEADER: &str = "x-slipway-variant";

enum Body {
    Empty,
    Length(usize),
    Chunked,
}

/// Reads what the stream has into `buf`; the peer closing is an error here.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.reserve(8192);
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The address and the prepared request for an `http://` URL.
fn raw_request(url: &str, body: &[u8], content_type: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("'{url}' is not a URL"))?;
    let host = parsed.host_str().with_context(|| format!("'{url}' has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nAccept: */*\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    Ok((addr, request))
}

impl Shot {
    /// Sends one request; `since` is when it was due. Records into `t` when `measure`.
    async fn fire(&self, conn: &mut Conn, since: Instant, measure: bool, t: &mut Tally) {
        if let Some((addr, request)) = &self.raw {
            let deadline = Duration::from_secs(30);
            let outcome = match tokio::time::timeout(deadline, exchange(addr, request, conn)).await
            {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) | Err(_) => Err(()),
            };
            if outcome.is_err() {
                conn.stream = None;
            }
            if measure {
                record(t, since, outcome);
            }
            return;
        }
        let answer = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, &self.content_type)
            .body(self.body.clone())
            .send()
            .await;
        let outcome = match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key(reqwest::header::RETRY_AFTER);
                let variant = r
                    .headers()
                    .get(VARIANT_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match r.bytes().await {
                    Ok(_) => Ok((status, retry_after, variant)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if measure {
            record(t, since, outcome.map_err(|_| ()));
        }
    }
}

/// Counts one answer or failure.
fn record(t: &mut Tally, since: Instant, outcome: Result<Answer, ()>) {
    match outcome {
        Ok((status, _, variant)) if (200..300).contains(&status) => {
            t.ok_us.push(since.elapsed().as_micros().min(u32::MAX as u128) as u32);
            if let Some(v) = variant {
                *t.variants.entry(v).or_default() += 1;
            }
        }
        Ok((503, retry_after, _)) => {
            t.overloaded += 1;
            t.overloaded_with_retry_after += u64::from(retry_after);
        }
        Ok(_) => t.other_status += 1,
        Err(()) => t.errors += 1,
    }
}

pub(crate) async fn run(args: LoadtestArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 || args.duration <= 0.0 || args.warmup < 0.0 {
        bail!("--concurrency must be at least 1 and --duration positive");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of requests per second");
    }
    for url in &args.urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("'{url}' is not an http:// or https:// URL");
        }
    }
    let body =
        std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let mut shots = Vec::with_capacity(args.urls.len());
    for url in &args.urls {
        let raw = match url.starts_with("http://") {
            true => Some(raw_request(url, &body, &args.content_type)?),
            false => None,
        };
        let shot = Arc::new(Shot {
            http: http.clone(),
            raw,
            url: url.clone(),
            body: body.clone().into(),
            content_type: args.content_type.clone(),
        });
        // One request first: a URL that does not answer 2xx is a usage error, not a measurement.
        let probe = shot
            .http
            .post(&shot.url)
            .header(reqwest::header::CONTENT_TYPE, &shot.content_type)
            .body(shot.body.clone())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", shot.url))?;
        let status = probe.status();
        if !status.is_success() {
            let text = probe.text().await.unwrap_or_default();
            bail!("{} answered {status}: {}", shot.url, text.chars().take(300).collect::<String>());
        }
        probe.bytes().await.with_context(|| format!("reading the answer of {}", shot.url))?;
        shots.push(shot);
    }

    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let tally = match args.rate {
        None => closed_loop(&shots, args.concurrency, measure_from, end).await,
        Some(rate) => open_loop(&shots, args.concurrency, rate, measure_from, end).await,
    };
    let measured = end.duration_since(measure_from).as_secs_f64();
    report(&args, tally, measured, global)
}

/// Tallies per URL, in the order of the URLs.
type Tallies = Vec<Tally>;

fn merge_into(all: &mut Tallies, t: Tallies) {
    for (a, b) in all.iter_mut().zip(t) {
        a.merge(b);
    }
}

async fn closed_loop(shots: &[Arc<Shot>], clients: usize, from: Instant, end: Instant) -> Tallies {
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let shots = shots.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut t: Tallies = shots.iter().map(|_| Tally::default()).collect();
            let mut conns: Vec<Conn> = shots.iter().map(|_| Conn::default()).collect();
            // Each client starts at a different URL, so the URLs share every moment alike.
            let mut i = c % shots.len();
            loop {
                let now = Instant::now();
                if now >= end {
                    return t;
                }
                shots[i].fire(&mut conns[i], now, now >= from, &mut t[i]).await;
                i = (i + 1) % shots.len();
            }
        }));
    }
    let mut all: Tallies = shots.iter().map(|_| Tally::default()).collect();
    for task in tasks {
        if let Ok(t) = task.await {
            merge_into(&mut all, t);
        }
    }
    all
}

async fn open_loop(
    shots: &[Arc<Shot>],
    max_in_flight: usize,
    rate: f64,
    from: Instant,
    end: Instant,
) -> Tallies {
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    // Idle keep-alive connections per URL: at most one per request in flight.
    let idle: Arc<Vec<std::sync::Mutex<Vec<Conn>>>> =
        Arc::new(shots.iter().map(|_| Default::default()).collect());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Tally)>();
    // The schedule is kept by an OS thread of its own: tokio's timer wheel ticks by the
    // millisecond, which would release requests in bursts of rate/1000 and count up to 1 ms of
    // the generator's own lateness as latency. A sleeping thread wakes within the kernel's timer
    // slack (~50 µs) of each due time, and never waits for an answer.
    let (release_tx, mut released) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n: u64 = 0;
        loop {
            let due = start + interval.mul_f64(n as f64);
            if due >= end {
                return;
            }
            n += 1;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if release_tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    let mut skipped = vec![0u64; shots.len()];
    // Latency counts from the moment the pacer released the request; the URLs take turns.
    let mut n = 0usize;
    while let Some(at) = released.recv().await {
        let measure = at >= from;
        let i = n % shots.len();
        n += 1;
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let (shot, tx, idle) = (shots[i].clone(), tx.clone(), idle.clone());
                tokio::spawn(async move {
                    let mut t = Tally::default();
                    let taken = idle[i].lock().ok().and_then(|mut v| v.pop());
                    let mut conn = taken.unwrap_or_default();
                    shot.fire(&mut conn, at, measure, &mut t).await;
                    if let Ok(mut v) = idle[i].lock() {
                        v.push(conn);
                    }
                    drop(permit);
                    let _ = tx.send((i, t));
                });
            }
            Err(_) => skipped[i] += u64::from(measure),
        }
    }
    let _ = pacer.join();
    drop(tx);
    let mut all: Tallies =
        skipped.into_iter().map(|skipped| Tally { skipped, ..Tally::default() }).collect();
    while let Some((i, t)) = rx.recv().await {
        all[i].merge(t);
    }
    all
}

/// The latency quantile `q` of sorted latencies, µs.
fn quantile(sorted: &[u32], q: f64) -> Option<f64> {
    (!sorted.is_empty())
        .then(|| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]))
}

fn latency_json(sorted: &[u32]) -> serde_json::Value {
    json!({
        "p50": quantile(sorted, 0.5), "p90": quantile(sorted, 0.9),
        "p99": quantile(sorted, 0.99), "max": quantile(sorted, 1.0),
    })
}

fn report(
    args: &LoadtestArgs,
    mut per_url: Tallies,
    seconds: f64,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    for t in &mut per_url {
        t.ok_us.sort_unstable();
    }
    // The whole run: every URL's tally together (`merge`), then its own quantiles.
    let mut t = Tally::default();
    for u in per_url.iter().cloned() {
        t.merge(u);
    }
    t.ok_us.sort_unstable();
    let pick = |q: f64| quantile(&t.ok_us, q);
    let ok = t.ok_us.len() as u64;
    let sent = ok + t.overloaded + t.other_status + t.errors;
    let urls: Vec<serde_json::Value> = args
        .urls
        .iter()
        .zip(&per_url)
        .map(|(url, u)| {
            json!({
                "url": url, "ok": u.ok_us.len(), "errors": u.errors, "other_status": u.other_status,
                "overloaded": u.overloaded, "skipped": u.skipped, "latency_us": latency_json(&u.ok_us),
            })
        })
        .collect();
    let summary = json!({
        "url": args.urls.join(" "),
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "concurrency": args.concurrency,
        "rate": args.rate,
        "seconds": seconds,
        "sent": sent,
        "ok": ok,
        "overloaded": t.overloaded,
        "overloaded_with_retry_after": t.overloaded_with_retry_after,
        "other_status": t.other_status,
        "errors": t.errors,
        "skipped": t.skipped,
        "ok_per_s": ok as f64 / seconds,
        "variants": t.variants,
        "latency_us": latency_json(&t.ok_us),
        "per_url": urls,
    });
    if global.json {
        println!("{summary}");
    } else {
        let us = |q: f64| pick(q).map_or("-".to_string(), |v| format!("{:.0}", v));
        println!(
            "{} {} for {seconds:.1} s: {ok} ok ({:.0}/s), {} overloaded (503; {} with Retry-After), {} other status, {} errors{}",
            args.urls.join(" "),
            match args.rate {
                Some(r) => format!("at {r:.0}/s (up to {} in flight)", args.concurrency),
                None => format!("with {} clients", args.concurrency),
            },
            ok as f64 / seconds,
            t.overloaded,
            t.overloaded_with_retry_after,
            t.other_status,
            t.errors,
            if t.skipped > 0 {
                format!(", {} not sent (all in flight)", t.skipped)
            } else {
                String::new()
            },
        );
        println!(
            "latency of ok answers, µs: p50 {}  p90 {}  p99 {}  max {}",
            us(0.5),
            us(0.9),
            us(0.99),
            us(1.0)
        );
        if per_url.len() > 1 {
            let width = args.urls.iter().map(String::len).max().unwrap_or(0);
            println!("{:<width$}  {:>8}  {:>6}  {:>6}  {:>6}", "by URL", "ok", "p50", "p90", "p99");
            for (url, u) in args.urls.iter().zip(&per_url) {
                let at = |q: f64| quantile(&u.ok_us, q).map_or("-".into(), |v| format!("{v:.0}"));
                println!(
                    "{url:<width$}  {:>8}  {:>6}  {:>6}  {:>6}",
                    u.ok_us.len(),
                    at(0.5),
                    at(0.9),
                    at(0.99)
                );
            }
        }
        if !t.variants.is_empty() {
            let shares: Vec<String> = t
                .variants
                .iter()
                .map(|(v, n)| format!("{v} {n} ({:.1}%)", *n as f64 * 100.0 / ok.max(1) as f64))
                .collect();
            println!("answered by variant: {}", shares.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
