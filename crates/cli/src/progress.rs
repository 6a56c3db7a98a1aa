//! A progress line for long work (files, bytes, rate, ETA), redrawn on stderr when it is a
//! terminal and silent otherwise (and under `--json`).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts done work; [`Bar::finish`] stops the redraw.
pub(crate) struct Bar {
    state: Arc<State>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct State {
    verb: String,
    /// Counts rows (in `files`) instead of files and bytes.
    rows: bool,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
}

impl Bar {
    /// A bar for `files_total` files of `bytes_total` bytes; drawn only if `visible` and stderr
    /// is a terminal.
    pub(crate) fn new(verb: &str, files_total: u64, bytes_total: u64, visible: bool) -> Bar {
        Bar::start(verb, false, files_total, bytes_total, visible)
    }

    /// A bar counting `total` rows (0: unknown); advance it with [`Bar::set_rows_of`].
    pub(crate) fn rows(verb: &str, total: u64, visible: bool) -> Bar {
        Bar::start(verb, true, total, 0, visible)
    }

    /// Rows done so far, of `total` (0: unknown).
    pub(crate) fn set_rows_of(&self, done: u64, total: u64) {
        self.state.files.store(done, Ordering::Relaxed);
        self.state.files_total.store(total, Ordering::Relaxed);
    }

    /// A handle that sets the rows done from another thread (a blocking task).
    pub(crate) fn counter(&self) -> impl Fn(u64) + Send + 'static {
        let state = self.state.clone();
        move |done| state.files.store(done, Ordering::Relaxed)
    }

    fn start(verb: &str, rows: bool, files_total: u64, bytes_total: u64, visible: bool) -> Bar {
        let state = Arc::new(State {
            verb: verb.to_string(),
            rows,
            files_total: AtomicU64::new(files_total),
            bytes_total: AtomicU64::new(bytes_total),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
        });
        let task = (visible && std::io::stderr().is_terminal()).then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(120)).await;
                    state.draw(false);
                }
            })
        });
        Bar { state, task }
    }

    pub(crate) fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            self.state.draw(true);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            eprintln!();
        }
    }
}

impl slipway_data::ingest::Progress for Bar {
    fn begin(&self, files: u64, bytes: u64) {
        self.state.files_total.store(files, Ordering::Relaxed);
        self.state.bytes_total.store(bytes, Ordering::Relaxed);
    }

    fn file_done(&self, bytes: u64) {
        self.state.files.fetch_add(1, Ordering::Relaxed);
        self.state.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl State {
    fn draw(&self, last: bool) {
        let files = self.files.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let files_total = self.files_total.load(Ordering::Relaxed);
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = bytes as f64 / secs;
        let eta = if rate > 0.0 && bytes_total > bytes {
            format!("ETA {:.0}s", (bytes_total - bytes) as f64 / rate)
        } else {
            String::new()
        };
        let width = 24;
        if self.rows {
            let rate = files as f64 / secs;
            let (bar, eta) = if files_total > 0 {
                let filled =
                    ((files as f64 / files_total as f64).clamp(0.0, 1.0) * width as f64) as usize;
                let eta = if rate > 0.0 && files_total > files {
                    format!("ETA {:.0}s", (files_total - files) as f64 / rate)
                } else {
                    String::new()
                };
                (format!("[{}{}] ", "#".repeat(filled), "-".repeat(width - filled)), eta)
            } else {
                (String::new(), String::new())
            };
            let total = if files_total > 0 { format!("/{files_total}") } else { String::new() };
            let line =
                format!("\r{} {bar}{files}{total} rows  {:.0} rows/s  {eta}", self.verb, rate);
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{line:<100}");
            if last {
                let _ = writeln!(err);
            }
            let _ = err.flush();
            return;
        }
        let done = if bytes_total == 0 {
            if files_total == 0 { 1.0 } else { files as f64 / files_total as f64 }
        } else {
            bytes as f64 / bytes_total as f64
        };
        let filled = ((done.clamp(0.0, 1.0)) * width as f64) as usize;
        let line = format!(
            "\r{} [{}{}] {}/{} files  {}/{}  {}/s  {}",
            self.verb,
            "#".repeat(filled),
            "-".repeat(width - filled),
            files,
            files_total,
            size(bytes),
            size(bytes_total),
            size(rate as u64),
            eta
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{line:<100}");
        if last {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// Bytes for people: `512 B`, `3.1 KiB`, `2.0 GiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(3 * 1024 + 100), "3.1 KiB");
        assert_eq!(super::size(2 << 30), "2.0 GiB");
    }
}
