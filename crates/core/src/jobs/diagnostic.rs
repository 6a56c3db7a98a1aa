//! `diagnostic.sleep`: a job that only waits, for checking that workers are alive and for
//! exercising leases, retries and cancellation end to end.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Handlers, JobContext, JobError};

/// The longest sleep a diagnostic job may ask for.
const MAX_SECONDS: f64 = 3600.0;

/// Registers the diagnostic job kinds.
pub fn register_diagnostics(handlers: &mut Handlers) {
    handlers.register("diagnostic.sleep", sleep);
}

/// Payload `{"seconds": 2.5, "fail_attempts": 0}`: sleeps, reporting progress each second and
/// stopping early when cancelled; the first `fail_attempts` attempts fail (to be retried).
async fn sleep(ctx: JobContext) -> Result<Value, JobError> {
    let seconds = ctx.payload().get("seconds").and_then(Value::as_f64).unwrap_or(1.0);
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(JobError::Fatal(format!("seconds must be between 0 and 3600, got {seconds}")));
    }
    let fail_attempts = ctx.payload().get("fail_attempts").and_then(Value::as_i64).unwrap_or(0);
    let total = Duration::from_secs_f64(seconds);
    let started = tokio::time::Instant::now();
    let mut last_report = 0;
    while started.elapsed() < total {
        if ctx.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let left = total.saturating_sub(started.elapsed()).min(Duration::from_millis(100));
        tokio::select! {
            _ = tokio::time::sleep(left) => {}
            _ = ctx.cancelled() => return Err(JobError::Cancelled),
        }
        let done = started.elapsed().as_secs();
        if done > last_report {
            last_report = done;
            ctx.progress("sleeping", done, Some(total.as_secs())).await?;
        }
    }
    if ctx.attempt() <= fail_attempts {
        return Err(JobError::Retry(format!("failing attempt {} as asked", ctx.attempt())));
    }
    Ok(json!({ "slept_ms": started.elapsed().as_millis() as u64, "worker": ctx.worker_id() }))
}
