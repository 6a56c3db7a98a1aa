//! The `tune.trial` jobs of a study run from a study file: one job per trial, queued by
//! `slipway tune run` and taken by any worker (how a job runs its objective is the CLI's). Here is
//! only what every caller must agree on: the kind, which study a job is for, and how a study's
//! jobs are counted and cancelled.

use std::collections::HashMap;

use serde_json::{Value, json};
use slipway_core::jobs::{Job, JobStatus, NewJob, Queue};

use crate::Result;

/// The job kind.
pub const KIND: &str = "tune.trial";

/// A job for one trial of the study `name` (`study_id`); `extra` adds the runner's own fields.
pub fn new_job(name: &str, study_id: &str, extra: Value) -> NewJob {
    let mut payload = json!({ "study": name, "study_id": study_id });
    if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        p.extend(extra);
    }
    NewJob { subject: Some(study_id.to_string()), ..NewJob::new(KIND, payload) }
}

/// Whether `job` is a trial job of this study, not of a deleted one of the same name (a job
/// queued before jobs named their study's id is taken as this study's).
pub fn is_for(job: &Job, name: &str, study_id: &str) -> bool {
    job.kind == KIND
        && job.payload["study"] == json!(name)
        && job.payload.get("study_id").is_none_or(|id| *id == json!(study_id))
}

/// The study's trial jobs not yet ended (queued or running), all of them, oldest first: by
/// their subject, the study's id, and those queued before jobs had one by their payload.
pub async fn open(queue: &Queue, name: &str, study_id: &str) -> Result<Vec<Job>> {
    let mut jobs = queue.open_of(KIND, Some(study_id)).await?;
    let older = queue.open_of(KIND, None).await?;
    if older.iter().any(|j| is_for(j, name, study_id)) {
        jobs.extend(older.into_iter().filter(|j| is_for(j, name, study_id)));
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    }
    Ok(jobs)
}

/// How many of the study's trial jobs wait for a worker.
pub async fn queued(queue: &Queue, name: &str, study_id: &str) -> Result<usize> {
    Ok(open(queue, name, study_id).await?.iter().filter(|j| j.status == JobStatus::Queued).count())
}

/// The trial jobs waiting for a worker of every study at once, for a list of studies: one
/// count by subject, and one pass over any queued before jobs had a subject.
pub struct Backlog {
    by_study: HashMap<String, usize>,
    older: Vec<Job>,
}

impl Backlog {
    pub async fn of(queue: &Queue) -> Result<Backlog> {
        let mut by_study = HashMap::new();
        let mut older = Vec::new();
        for (subject, n) in queue.queued_by_subject(KIND).await? {
            match subject {
                Some(id) => {
                    by_study.insert(id, n as usize);
                }
                None => older = queue.open_of(KIND, None).await?,
            }
        }
        older.retain(|j| j.status == JobStatus::Queued);
        Ok(Backlog { by_study, older })
    }

    /// The study's queued trial jobs.
    pub fn queued(&self, name: &str, study_id: &str) -> usize {
        let older = self.older.iter().filter(|j| is_for(j, name, study_id)).count();
        self.by_study.get(study_id).copied().unwrap_or(0) + older
    }
}

/// Cancels the study's trial jobs: queued ones never run; running ones are asked to stop (their
/// workers see it at their next heartbeat). Returns how many this call cancelled or asked to
/// stop (not those that ended meanwhile, nor running ones already asked).
pub async fn cancel(queue: &Queue, name: &str, study_id: &str) -> Result<usize> {
    let mut cancelled = 0;
    for job in open(queue, name, study_id).await? {
        if let Ok(now) = queue.cancel(&job.id).await {
            let done = now.status == JobStatus::Cancelled && job.status == JobStatus::Queued;
            let asked = now.status == JobStatus::Running && !job.cancel_requested;
            cancelled += usize::from(done || asked);
        }
    }
    Ok(cancelled)
}
