//! The durable job queue: all long work (batch prediction, drift reports, tuning trials,
//! pipeline steps) runs as jobs stored in the metadata store.
//!
//! A job is enqueued (`queued`), claimed by a worker with a lease (`running`), kept alive by
//! heartbeats, and ends `succeeded`, `failed` (after its retries, with exponential backoff) or
//! `cancelled`. A worker that dies loses its lease when it expires and the job is claimed again.
//! Every state change takes the lease token, so a worker whose lease was taken over cannot
//! complete the job a second time. On PostgreSQL claims use `FOR UPDATE SKIP LOCKED`; on SQLite
//! the claim is one `UPDATE … RETURNING`, which SQLite runs under its single writer lock.

mod diagnostic;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use tokio::sync::Notify;

use crate::db::{Backend, Db, Migration};
use crate::error::{Error, Result};
use crate::{new_id, now_ms};

pub use diagnostic::register_diagnostics;
pub use worker::{Handlers, JobContext, JobError, Worker, WorkerOptions};

/// The queue's schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sqlite: include_str!("../../migrations/sqlite/0001_jobs.sql"),
        postgres: include_str!("../../migrations/postgres/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "subject",
        sqlite: include_str!("../../migrations/sqlite/0002_subject.sql"),
        postgres: include_str!("../../migrations/postgres/0002_subject.sql"),
    },
];

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<JobStatus> {
        Ok(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown job status {s:?} (expected queued, running, succeeded, failed or cancelled)"
                )));
            }
        })
    }

    /// True once the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Job {
    pub id: String,
    pub kind: String,
    /// What the job is about, if its enqueuer said (see [`NewJob::subject`]).
    pub subject: Option<String>,
    pub payload: Value,
    pub status: JobStatus,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub progress: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobEvent {
    pub at: i64,
    pub event: String,
    pub attempt: i64,
    pub worker: Option<String>,
    pub detail: Option<String>,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    /// What the job is about (a study's id, say): [`Queue::open_of`] finds a subject's open jobs
    /// by index. At most 200 characters.
    pub subject: Option<String>,
    pub payload: Value,
    /// Higher runs first.
    pub priority: i64,
    /// Attempts before the job is failed for good (at least 1).
    pub max_attempts: i64,
    /// Not before this time (ms since the epoch); `None` for now.
    pub run_after: Option<i64>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            subject: None,
            payload,
            priority: 0,
            max_attempts: 3,
            run_after: None,
        }
    }
}

/// A worker's hold on a running job. Only the holder of the current lease can change the job.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: Job,
    pub token: String,
    pub worker: String,
}

/// Queue timing.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// The wait before the first retry; each later retry waits twice as long as the one before.
    pub backoff_base: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
}

impl Default for QueueOptions {
    fn default() -> QueueOptions {
        QueueOptions {
            lease: Duration::from_secs(30),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// The job queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct Queue {
    db: Db,
    notify: Arc<Notify>,
    options: Arc<QueueOptions>,
}

const JOB_COLUMNS: &str = "id, kind, subject, payload, status, priority, attempts, max_attempts, run_after, \
    lease_token, lease_owner, lease_expires_at, cancel_requested, progress, result, error, \
    created_at, started_at, finished_at, updated_at";

impl Queue {
    /// Opens the queue on `db`, bringing its schema up to date.
    pub async fn open(db: Db, options: QueueOptions) -> Result<Queue> {
        db.migrate("core", MIGRATIONS).await?;
        Ok(Queue { db, notify: Arc::new(Notify::new()), options: Arc::new(options) })
    }

    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Resolves when a job was enqueued in this process (workers elsewhere poll).
    pub async fn wait_for_work(&self) {
        self.notify.notified().await
    }

    /// Adds a job and wakes a worker in this process.
    pub async fn enqueue(&self, new: NewJob) -> Result<Job> {
        if new.kind.is_empty() || new.kind.len() > 200 {
            return Err(Error::InvalidArgument("a job kind has 1 to 200 characters".into()));
        }
        if new.subject.as_ref().is_some_and(|s| s.len() > 200) {
            return Err(Error::InvalidArgument("a job subject has at most 200 characters".into()));
        }
        if new.max_attempts < 1 {
            return Err(Error::InvalidArgument("max_attempts must be at least 1".into()));
        }
        let now = now_ms();
        let id = new_id();
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO jobs (id, kind, subject, payload, status, priority, attempts, \
             max_attempts, run_after, cancel_requested, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5, 0, $6, $7, 0, $8, $8)",
        )
        .bind(&id)
        .bind(&new.kind)
        .bind(new.subject.as_deref())
        .bind(new.payload.to_string())
        .bind(new.priority)
        .bind(new.max_attempts)
        .bind(new.run_after.unwrap_or(now))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record(&mut tx, &id, "enqueued", 0, None, None).await?;
        // Read back inside the transaction: the answer is the job as enqueued, even if a worker
        // woken below claims it before the caller sees it.
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        self.notify.notify_waiters();
        self.notify.notify_one();
        Ok(job)
    }

    pub async fn get(&self, id: &str) -> Result<Job> {
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?;
        match row {
            Some(row) => job_from_row(&row),
            None => Err(Error::JobNotFound { id: id.to_string() }),
        }
    }

    /// The newest jobs first, optionally only those in `status`.
    pub async fn list(&self, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
        let limit = limit.clamp(1, 1000);
        let rows = match status {
            Some(status) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE status = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                )))
                .bind(status.as_str())
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1"
                )))
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
        };
        rows.iter().map(job_from_row).collect()
    }

    /// Every job of `kind` about `subject` (`None`: about nothing said) not yet ended (queued or
    /// running), oldest first, with no limit, found by index: for a caller that must see all of
    /// a batch it queued, to count or cancel it (`list` shows only the newest jobs of every kind).
    pub async fn open_of(&self, kind: &str, subject: Option<&str>) -> Result<Vec<Job>> {
        let open = "status IN ('queued', 'running') AND kind = $1";
        // `= $2` for a subject (by index on both stores), `IS NULL` for none.
        let same = if subject.is_some() { "subject = $2" } else { "subject IS NULL" };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {open} AND {same} ORDER BY created_at, id"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(kind);
        if let Some(subject) = subject {
            query = query.bind(subject);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// How many jobs of `kind` wait for a worker, by subject (`None`: those of no subject);
    /// subjects with none are left out.
    pub async fn queued_by_subject(&self, kind: &str) -> Result<Vec<(Option<String>, i64)>> {
        let rows = sqlx::query(
            "SELECT subject, COUNT(*) AS n FROM jobs WHERE kind = $1 AND status = 'queued' \
             GROUP BY subject",
        )
        .bind(kind)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("subject")?, r.try_get("n")?))).collect()
    }

    /// How many jobs are in each status (statuses with none are left out).
    pub async fn counts(&self) -> Result<Vec<(JobStatus, i64)>> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((JobStatus::parse(&r.try_get::<String, _>("status")?)?, r.try_get("n")?)))
            .collect()
    }

    /// The job's history, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<JobEvent>> {
        self.get(id).await?;
        let rows = sqlx::query(
            "SELECT at, event, attempt, worker, detail FROM job_events WHERE job_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobEvent {
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    attempt: r.try_get("attempt")?,
                    worker: r.try_get("worker")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Claims the next due job of one of `kinds` for `worker`, or a running job whose lease
    /// expired. Jobs whose lease expired on their last attempt are failed on the way.
    pub async fn claim(&self, worker: &str, kinds: &[&str]) -> Result<Option<Lease>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let token = new_id();
        let expires = now + self.options.lease.as_millis() as i64;
        let mut tx = self.db.begin_write().await?;

        let reaped = sqlx::query(
            "UPDATE jobs SET status = 'failed', error = 'the worker holding it stopped answering \
             on its last attempt', lease_token = NULL, finished_at = $1, updated_at = $1 \
             WHERE status = 'running' AND lease_expires_at < $1 AND attempts >= max_attempts \
             RETURNING id, attempts, lease_owner",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &reaped {
            let id: String = row.try_get("id")?;
            let attempt: i64 = row.try_get("attempts")?;
            let owner: Option<String> = row.try_get("lease_owner")?;
            record(&mut tx, &id, "lease_expired", attempt, owner.as_deref(), None).await?;
            record(&mut tx, &id, "failed", attempt, None, Some("no attempts left")).await?;
        }

        let kind_params: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 5)).collect();
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = $1, \
             lease_owner = $2, lease_expires_at = $3, started_at = COALESCE(started_at, $4), \
             updated_at = $4 \
             WHERE id = (SELECT id FROM jobs WHERE kind IN ({kinds}) AND cancel_requested = 0 AND \
               ((status = 'queued' AND run_after <= $4) OR \
                (status = 'running' AND lease_expires_at < $4 AND attempts < max_attempts)) \
               ORDER BY priority DESC, run_after, id LIMIT 1{lock}) \
             RETURNING {JOB_COLUMNS}",
            kinds = kind_params.join(", "),
        );
        // Only placeholders and constants are formatted in: no user text.
        let mut query =
            sqlx::query(AssertSqlSafe(sql)).bind(&token).bind(worker).bind(expires).bind(now);
        for kind in kinds {
            query = query.bind(*kind);
        }
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        record(&mut tx, &job.id, "claimed", job.attempts, Some(worker), None).await?;
        tx.commit().await?;
        Ok(Some(Lease { job, token, worker: worker.to_string() }))
    }

    /// Extends the lease. Answers whether cancellation was asked for; `LeaseLost` if the job is
    /// no longer this lease's.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<bool> {
        let now = now_ms();
        let expires = now + self.options.lease.as_millis() as i64;
        let row = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(expires)
        .bind(now)
        .bind(&lease.job.id)
        .bind(&lease.token)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some(row) => Ok(row.try_get::<i64, _>("cancel_requested")? != 0),
            None => Err(Error::LeaseLost { id: lease.job.id.clone() }),
        }
    }

    /// Records named progress (`{"step": …, "done": …, "total": …}` or any JSON).
    pub async fn progress(&self, lease: &Lease, progress: &Value) -> Result<()> {
        let done = sqlx::query(
            "UPDATE jobs SET progress = $1, updated_at = $2 \
             WHERE id = $3 AND lease_token = $4 AND status = 'running'",
        )
        .bind(progress.to_string())
        .bind(now_ms())
        .bind(&lease.job.id)
        .bind(&lease.token)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::LeaseLost { id: lease.job.id.clone() });
        }
        Ok(())
    }

    /// Marks the job succeeded with `result`.
    pub async fn complete(&self, lease: &Lease, result: &Value) -> Result<Job> {
        let mut tx = self.db.begin_write().await?;
        self.complete_in(&mut tx, lease, result).await?;
        tx.commit().await?;
        self.get(&lease.job.id).await
    }

    /// Marks the job succeeded inside the caller's transaction, so that a handler's own writes
    /// and the job's completion commit together or not at all.
    pub async fn complete_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        lease: &Lease,
        result: &Value,
    ) -> Result<()> {
        self.finish(tx, lease, "succeeded", Some(result), None).await
    }

    /// Records a failed attempt: the job is retried after a backoff while attempts remain and
    /// `retry` is true, and failed for good otherwise.
    pub async fn fail(&self, lease: &Lease, error: &str, retry: bool) -> Result<Job> {
        let attempts = lease.job.attempts;
        let mut tx = self.db.begin_write().await?;
        if retry && attempts < lease.job.max_attempts {
            let delay = self.backoff(attempts);
            let now = now_ms();
            let done = sqlx::query(
                "UPDATE jobs SET status = 'queued', run_after = $1, error = $2, lease_token = NULL, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
                 WHERE id = $4 AND lease_token = $5 AND status = 'running'",
            )
            .bind(now + delay.as_millis() as i64)
            .bind(error)
            .bind(now)
            .bind(&lease.job.id)
            .bind(&lease.token)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::LeaseLost { id: lease.job.id.clone() });
            }
            let detail = format!("{error} (retry in {} ms)", delay.as_millis());
            record(&mut tx, &lease.job.id, "retry", attempts, Some(&lease.worker), Some(&detail))
                .await?;
        } else {
            self.finish(&mut tx, lease, "failed", None, Some(error)).await?;
        }
        tx.commit().await?;
        self.get(&lease.job.id).await
    }

    /// Acknowledges a cancellation the worker observed.
    pub async fn acknowledge_cancel(&self, lease: &Lease) -> Result<Job> {
        let mut tx = self.db.begin_write().await?;
        self.finish(&mut tx, lease, "cancelled", None, None).await?;
        tx.commit().await?;
        self.get(&lease.job.id).await
    }

    /// Gives the job back without using up an attempt (the worker is shutting down).
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_token = NULL, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE id = $2 AND lease_token = $3 AND status = 'running'",
        )
        .bind(now_ms())
        .bind(&lease.job.id)
        .bind(&lease.token)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::LeaseLost { id: lease.job.id.clone() });
        }
        record(&mut tx, &lease.job.id, "released", lease.job.attempts, Some(&lease.worker), None)
            .await?;
        tx.commit().await?;
        self.notify.notify_one();
        Ok(())
    }

    /// Cancels a job: a queued job at once, a running one when its worker next checks in.
    /// A finished job is returned unchanged.
    pub async fn cancel(&self, id: &str) -> Result<Job> {
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let queued = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = $1, \
             updated_at = $1 WHERE id = $2 AND status = 'queued' RETURNING attempts",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = queued {
            record(&mut tx, id, "cancelled", row.try_get("attempts")?, None, None).await?;
        } else {
            let running = sqlx::query(
                "UPDATE jobs SET cancel_requested = 1, updated_at = $1 \
                 WHERE id = $2 AND status = 'running' AND cancel_requested = 0 RETURNING attempts",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = running {
                record(&mut tx, id, "cancel_requested", row.try_get("attempts")?, None, None)
                    .await?;
            }
        }
        tx.commit().await?;
        self.get(id).await
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let factor = 1u32 << (attempts.clamp(1, 20) - 1) as u32;
        self.options.backoff_base.saturating_mul(factor).min(self.options.backoff_max)
    }

    async fn finish(
        &self,
        tx: &mut Transaction<'static, Any>,
        lease: &Lease,
        status: &str,
        result: Option<&Value>,
        error: Option<&str>,
    ) -> Result<()> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, result = $2, error = $3, lease_token = NULL, \
             lease_expires_at = NULL, finished_at = $4, updated_at = $4 \
             WHERE id = $5 AND lease_token = $6 AND status = 'running'",
        )
        .bind(status)
        .bind(result.map(|r| r.to_string()))
        .bind(error)
        .bind(now)
        .bind(&lease.job.id)
        .bind(&lease.token)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::LeaseLost { id: lease.job.id.clone() });
        }
        record(tx, &lease.job.id, status, lease.job.attempts, Some(&lease.worker), error).await
    }
}

async fn record(
    tx: &mut Transaction<'static, Any>,
    job_id: &str,
    event: &str,
    attempt: i64,
    worker: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO job_events (job_id, at, event, attempt, worker, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(job_id)
    .bind(now_ms())
    .bind(event)
    .bind(attempt)
    .bind(worker)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn job_from_row(row: &AnyRow) -> Result<Job> {
    let json = |col: &str| -> Result<Option<Value>> {
        let text: Option<String> = row.try_get(col)?;
        Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))))
    };
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        payload: json("payload")?.unwrap_or(Value::Null),
        status: JobStatus::parse(&row.try_get::<String, _>("status")?)?,
        priority: row.try_get("priority")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_after: row.try_get("run_after")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        progress: json("progress")?,
        result: json("result")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
