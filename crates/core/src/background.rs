//! CPU work that must never compete with requests: encoding the prediction log's segments,
//! folding its profiles, judging drift. It runs on a few threads of its own at a lower
//! scheduling priority (nice 10), so on a busy machine the kernel gives the request path the
//! cores first and the background work takes what is left.
//!
//! (`tokio::task::spawn_blocking` threads run at the same priority as the runtime's: a 50 ms
//! burst of encoding there shows up in every request's p99 on a two-core machine.)

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Task = Box<dyn FnOnce() + Send>;

/// How much lower than the process the background threads run (Linux: per thread).
const NICE: i32 = 10;

fn pool() -> &'static Mutex<Sender<Task>> {
    static POOL: OnceLock<Mutex<Sender<Task>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("slipway-bg-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "starting a background thread");
            }
        }
        Mutex::new(tx)
    })
}

fn work(rx: &Mutex<Receiver<Task>>) {
    #[cfg(unix)]
    if let Err(e) = rustix::process::nice(NICE) {
        tracing::debug!(error = %e, "lowering a background thread's priority");
    }
    loop {
        let task = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match task {
            // A panic in one task loses that task's answer (its caller sees an error), not the
            // thread.
            Ok(task) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
            }
            Err(_) => return,
        }
    }
}

/// The background work failed: it panicked, or the pool could not take it.
#[derive(Debug, thiserror::Error)]
#[error("background work did not finish")]
pub struct Lost;

/// Runs `f` on a background thread and waits for its answer without blocking the runtime.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task: Task = Box::new(move || {
        let _ = tx.send(f());
    });
    pool().lock().map_err(|_| Lost)?.send(task).map_err(|_| Lost)?;
    rx.await.map_err(|_| Lost)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_at_a_lower_priority_and_a_panic_loses_only_its_own_answer() {
        let answer = super::run(|| 6 * 7).await.unwrap();
        assert_eq!(answer, 42);
        assert!(super::run(|| -> i32 { panic!("boom") }).await.is_err());
        #[cfg(target_os = "linux")]
        {
            let mine = rustix::process::getpriority_process(None).unwrap();
            let theirs =
                super::run(|| rustix::process::getpriority_process(None).unwrap()).await.unwrap();
            assert_eq!(theirs, (mine + super::NICE).min(19));
        }
        // The pool survived the panic.
        assert_eq!(super::run(|| "still here").await.unwrap(), "still here");
    }
}
