//! [`Tuning`]: studies and trials in the store, each trial a tracked run (a child of its study's
//! parent run). Every operation loads the study inside a write transaction (from memory, reading
//! only what other processes changed since), applies the in-memory trial life cycle ([`Study`])
//! and writes back what changed; runs are created and updated through `track` outside that
//! transaction.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use slipway_core::{Db, Migration, new_id, now_ms};
use track::{KeyValue, Metric, NewRun, RunStatus, Tracking};

use crate::config::{Direction, PrunerConfig, SamplerConfig, StudyConfig};
use crate::error::{Error, Result};
use crate::space::Distribution;
use crate::spec::StudySpec;
use crate::store::{self, Loaded, StudyRow, TrialMeta};
use crate::study::{Study, Trial, TrialState};

/// The tuning schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tuning",
        sqlite: include_str!("../migrations/sqlite/0001_tune.sql"),
        postgres: include_str!("../migrations/postgres/0001_tune.sql"),
    },
    Migration {
        version: 2,
        name: "objectives",
        sqlite: include_str!("../migrations/sqlite/0002_objectives.sql"),
        postgres: include_str!("../migrations/postgres/0002_objectives.sql"),
    },
    Migration {
        version: 3,
        name: "revision",
        sqlite: include_str!("../migrations/sqlite/0003_revision.sql"),
        postgres: include_str!("../migrations/postgres/0003_revision.sql"),
    },
];

/// Tag on every trial's run and its study's parent run: the study's name.
pub const STUDY_TAG: &str = "slipway.study";
/// Tag on a trial's run: its number in the study.
pub const TRIAL_TAG: &str = "slipway.trial";
/// Tag on a trial's run once it ends: COMPLETE, PRUNED or FAIL.
pub const TRIAL_STATE_TAG: &str = "slipway.trial_state";

/// A study to create.
#[derive(Debug, Clone)]
pub struct NewStudy {
    pub name: String,
    /// The experiment of the study's runs (created if missing); the study's name by default.
    pub experiment: Option<String>,
    /// One per objective; more than one makes a multi-objective study.
    pub directions: Vec<Direction>,
    /// Each objective's metric name in the trials' runs, in the order of `directions`.
    pub metrics: Vec<String>,
    pub sampler: SamplerConfig,
    pub pruner: PrunerConfig,
    pub seed: Option<u64>,
    /// The study file as JSON, for studies run from one.
    pub spec: Option<Value>,
    pub n_trials: Option<i64>,
    pub enqueue: Vec<BTreeMap<String, Value>>,
    pub user: String,
}

impl NewStudy {
    /// A study as its file declares it.
    pub fn from_spec(spec: &StudySpec, file: Value, user: &str) -> NewStudy {
        NewStudy {
            name: spec.name.clone(),
            experiment: spec.experiment.clone(),
            directions: spec.directions.clone(),
            metrics: spec.metrics.clone(),
            sampler: spec.sampler.clone(),
            pruner: spec.pruner.clone(),
            seed: spec.seed,
            spec: Some(file),
            n_trials: Some(spec.trials as i64),
            enqueue: spec.enqueue.clone(),
            user: user.to_string(),
        }
    }
}

/// A trial as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TrialView {
    pub number: u64,
    pub run_id: String,
    pub state: TrialState,
    pub params: BTreeMap<String, Value>,
    pub distributions: BTreeMap<String, Distribution>,
    /// The (first) objective's value.
    pub value: Option<f64>,
    /// One per objective once complete (a pruned trial's last intermediate value).
    pub values: Vec<f64>,
    /// (step, value); NaN values are null.
    pub intermediate: Vec<(i64, Option<f64>)>,
    pub error: Option<String>,
    pub worker: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

/// What deleting a study removed.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedStudy {
    pub name: String,
    pub study_id: String,
    /// Trials deleted.
    pub trials: usize,
    /// Of them, running ones (failed first: only with force).
    pub running: usize,
    /// Runs deleted (the trials' and the study's parent run), when asked to.
    pub runs_deleted: usize,
    /// Runs that could not be ended or deleted after the study was (each with why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs_skipped: Vec<String>,
}

/// A study as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StudyInfo {
    pub study_id: String,
    pub name: String,
    pub experiment_id: String,
    pub parent_run_id: String,
    /// The first objective's direction and metric (the study's, with one objective).
    pub direction: Direction,
    pub metric: String,
    pub directions: Vec<Direction>,
    pub metrics: Vec<String>,
    pub sampler: SamplerConfig,
    pub pruner: PrunerConfig,
    pub seed: u64,
    pub n_trials: Option<i64>,
    pub spec: Option<Value>,
    /// Trials by state (RUNNING, COMPLETE, PRUNED, FAIL).
    pub counts: BTreeMap<String, i64>,
    /// The best trial (none in a multi-objective study).
    pub best: Option<TrialView>,
    /// The Pareto front: complete trials no other dominates, by number (with one objective, the
    /// best trial). Both are left out of study lists (see [`StudyInfo::listed`]).
    pub best_trials: Vec<TrialView>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl StudyInfo {
    /// As a list of studies shows it: with `queued_jobs` (its trial jobs waiting for a worker),
    /// and without its best trial(s), which a list does not compute (ask for the study).
    pub fn listed(&self, queued_jobs: usize) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("best");
            o.remove("best_trials");
            o.insert("queued_jobs".into(), queued_jobs.into());
        }
        v
    }
}

/// How a trial is asked for.
#[derive(Debug, Clone, Default)]
pub struct AskOptions {
    /// Values to use for these parameters when suggested (otherwise the oldest enqueued set).
    pub fixed: BTreeMap<String, Value>,
    /// A lease: unless renewed by [`Tuning::heartbeat`] within this many ms, the trial is failed.
    pub lease_ms: Option<i64>,
    pub worker: Option<String>,
    pub user: String,
}

/// Tuning over the metadata store.
#[derive(Clone)]
pub struct Tuning {
    db: Db,
    tracking: Tracking,
    /// The studies this process worked on, kept between operations (see [`store::load`]).
    cache: std::sync::Arc<store::StudyCache>,
}

fn view(study: &Study, trial: &Trial, meta: &TrialMeta) -> TrialView {
    TrialView {
        number: trial.number,
        run_id: meta.run_id.clone(),
        state: trial.state,
        params: study.params_of(trial),
        distributions: trial
            .params
            .iter()
            .map(|&(id, _)| {
                let key = study.key(id);
                (key.name.clone(), key.dist.clone())
            })
            .collect(),
        value: trial.value(),
        values: trial.values.clone(),
        intermediate: trial
            .intermediate
            .iter()
            .map(|&(s, v)| (s, (!v.is_nan()).then_some(v)))
            .collect(),
        error: meta.error.clone(),
        worker: meta.worker.clone(),
        started_ms: meta.started_ms,
        finished_ms: meta.finished_ms,
    }
}

/// A param's value as a run param: strings bare, everything else as JSON.
fn param_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A seed for a study given none: from a fresh random id, in 53 bits, so that it survives a JSON
/// number in JavaScript and in Python's float.
fn random_seed() -> u64 {
    crate::rng::fnv1a(new_id().as_bytes()) >> 11
}

impl Tuning {
    /// Opens tuning on `db`, bringing its schema up to date.
    pub async fn open(db: Db, tracking: Tracking) -> Result<Tuning> {
        db.migrate("tune", MIGRATIONS).await?;
        Ok(Tuning { db, tracking, cache: Default::default() })
    }

    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    /// Creates a study with its experiment and parent run. With `load_if_exists`, an existing
    /// study of that name is returned instead (its settings unchanged).
    pub async fn create_study(&self, new: NewStudy, load_if_exists: bool) -> Result<StudyInfo> {
        let name = new.name.trim().to_string();
        if name.is_empty() || name.len() > 200 || name.contains('/') {
            return Err(Error::invalid(
                "name: a study needs a name of 1 to 200 characters, without '/'",
            ));
        }
        crate::config::check_objectives(&new.directions, &new.metrics, &new.pruner)?;
        if let Some(n) = new.n_trials
            && n < 1
        {
            return Err(Error::invalid("n_trials: must be at least 1"));
        }
        if store::get_study_row(&self.db, &name).await?.is_some() {
            if load_if_exists {
                return self.study(&name).await;
            }
            return Err(Error::StudyExists { name });
        }
        let experiment_name = new.experiment.clone().unwrap_or_else(|| name.clone());
        let experiment_id = match self.tracking.get_experiment_by_name(&experiment_name).await {
            Ok(e) => e.experiment_id,
            Err(track::Error::ExperimentNameNotFound { .. }) => {
                match self.tracking.create_experiment(&experiment_name, None, &[]).await {
                    Ok(id) => id,
                    // Created meanwhile by someone else.
                    Err(track::Error::ExperimentExists { .. }) => {
                        self.tracking.get_experiment_by_name(&experiment_name).await?.experiment_id
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let parent = self
            .tracking
            .create_run(NewRun {
                experiment_id: experiment_id.clone(),
                user_id: new.user.clone(),
                run_name: Some(name.clone()),
                start_time: None,
                tags: vec![
                    KeyValue { key: STUDY_TAG.into(), value: name.clone() },
                    KeyValue { key: "slipway.kind".into(), value: "study".into() },
                ],
            })
            .await?;
        let now = now_ms();
        let row = StudyRow {
            study_id: new_id(),
            name: name.clone(),
            experiment_id,
            parent_run_id: parent.info.run_id.clone(),
            metrics: new.metrics.clone(),
            config: StudyConfig {
                name: name.clone(),
                directions: new.directions.clone(),
                sampler: new.sampler,
                pruner: new.pruner,
                seed: new.seed.unwrap_or_else(random_seed),
            },
            spec: new.spec,
            n_trials: new.n_trials,
            enqueued: new.enqueue,
            created_ms: now,
            updated_ms: now,
        };
        match store::insert_study(&self.db, &row).await {
            Ok(()) => {}
            Err(Error::StudyExists { .. }) => {
                // Another client created it meanwhile: this parent run is not needed.
                self.tracking.delete_run(&parent.info.run_id).await?;
                if load_if_exists {
                    return self.study(&name).await;
                }
                return Err(Error::StudyExists { name });
            }
            Err(e) => return Err(e),
        }
        let config = store::config_json(&row.config);
        self.tracking
            .log_batch(
                &parent.info.run_id,
                &[],
                &[
                    KeyValue {
                        key: "direction".into(),
                        value: row
                            .config
                            .directions
                            .iter()
                            .map(|d| d.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    },
                    KeyValue { key: "metric".into(), value: row.metrics.join(",") },
                    KeyValue { key: "sampler".into(), value: config["sampler"].to_string() },
                    KeyValue { key: "pruner".into(), value: config["pruner"].to_string() },
                    KeyValue { key: "seed".into(), value: row.config.seed.to_string() },
                ],
                &[],
            )
            .await?;
        self.study(&name).await
    }

    /// A study with its trial counts and best trial.
    pub async fn study(&self, name: &str) -> Result<StudyInfo> {
        let loaded = store::load(&self.db, &self.cache, name, false).await?;
        Ok(info(&loaded))
    }

    /// Every study, newest first, with counts (best trials are left out: ask for a study).
    pub async fn studies(&self) -> Result<Vec<StudyInfo>> {
        let rows = store::list_study_rows(&self.db).await?;
        let counts = store::counts(&self.db).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut c = BTreeMap::new();
                for state in ["RUNNING", "COMPLETE", "PRUNED", "FAIL"] {
                    c.insert(
                        state.to_string(),
                        counts
                            .get(&(row.study_id.clone(), state.to_string()))
                            .copied()
                            .unwrap_or(0),
                    );
                }
                study_info(&row, c, None, Vec::new())
            })
            .collect())
    }

    /// Every trial of a study, by number.
    pub async fn trials(&self, name: &str) -> Result<Vec<TrialView>> {
        let loaded = store::load(&self.db, &self.cache, name, false).await?;
        Ok(loaded
            .study
            .trials()
            .iter()
            .map(|t| view(&loaded.study, t, &loaded.meta[t.number as usize]))
            .collect())
    }

    /// Each parameter's importance over the complete trials (see [`crate::importance`]).
    pub async fn importance(&self, name: &str, objective: usize) -> Result<Vec<crate::Importance>> {
        let loaded = store::load(&self.db, &self.cache, name, false).await?;
        let n = loaded.study.config.n_objectives();
        if objective >= n {
            return Err(Error::invalid(format!(
                "objective: the study has {n} objective{} (0 to {})",
                if n == 1 { "" } else { "s" },
                n - 1
            )));
        }
        Ok(crate::importance(&loaded.study, objective))
    }

    pub async fn trial(&self, name: &str, number: u64) -> Result<TrialView> {
        let loaded = store::load(&self.db, &self.cache, name, false).await?;
        let t = loaded.study.trial(number)?;
        Ok(view(&loaded.study, t, &loaded.meta[number as usize]))
    }

    /// Fails running trials whose lease ran out; returns their run ids.
    fn sweep(loaded: &mut Loaded, now: i64) -> Result<Vec<u64>> {
        let expired: Vec<u64> = loaded
            .study
            .trials()
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .filter(|t| loaded.meta[t.number as usize].lease_expires_ms.is_some_and(|at| at < now))
            .map(|t| t.number)
            .collect();
        for &n in &expired {
            loaded.study.tell(n, TrialState::Fail, &[])?;
            let m = &mut loaded.meta[n as usize];
            m.error = Some(format!(
                "the trial's lease expired (its worker {} stopped renewing it)",
                m.worker.as_deref().unwrap_or("-")
            ));
            m.finished_ms = Some(now);
            m.lease_expires_ms = None;
        }
        Ok(expired)
    }

    async fn finish_runs(&self, loaded_runs: Vec<(String, TrialState)>) -> Result<()> {
        for (run_id, state) in loaded_runs {
            self.end_run(&run_id, state).await?;
        }
        Ok(())
    }

    async fn end_run(&self, run_id: &str, state: TrialState) -> Result<()> {
        let status = match state {
            TrialState::Complete | TrialState::Pruned => RunStatus::Finished,
            TrialState::Fail => RunStatus::Failed,
            TrialState::Running => return Ok(()),
        };
        self.tracking
            .log_batch(
                run_id,
                &[],
                &[],
                &[KeyValue { key: TRIAL_STATE_TAG.into(), value: state.as_str().into() }],
            )
            .await?;
        self.tracking.update_run(run_id, Some(status), Some(now_ms()), None).await?;
        Ok(())
    }

    /// Starts a trial: a run under the study's parent run, a number, and the values it was
    /// given in advance. Expired leases are failed first.
    pub async fn ask(&self, name: &str, options: AskOptions) -> Result<TrialView> {
        let row = store::get_study_row(&self.db, name)
            .await?
            .ok_or_else(|| Error::StudyNotFound { name: name.into() })?;
        if let Some(lease) = options.lease_ms
            && !(1_000..=86_400_000).contains(&lease)
        {
            return Err(Error::invalid("lease_ms: must lie between 1,000 and 86,400,000"));
        }
        // The run first: track writes outside our transaction (SQLite has one writer).
        let run = self
            .tracking
            .create_run(NewRun {
                experiment_id: row.experiment_id.clone(),
                user_id: options.user.clone(),
                run_name: Some(format!("{name}-trial")),
                start_time: None,
                tags: vec![
                    KeyValue { key: STUDY_TAG.into(), value: name.to_string() },
                    KeyValue { key: "mlflow.parentRunId".into(), value: row.parent_run_id.clone() },
                ],
            })
            .await?;
        let run_id = run.info.run_id;
        let result = self.ask_in_store(name, &run_id, &options).await;
        let (trial, expired) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = self.tracking.delete_run(&run_id).await;
                return Err(e);
            }
        };
        self.finish_runs(expired).await?;
        self.tracking
            .update_run(&run_id, None, None, Some(&format!("{name}-{}", trial.number)))
            .await?;
        self.tracking
            .log_batch(
                &run_id,
                &[],
                &[],
                &[KeyValue { key: TRIAL_TAG.into(), value: trial.number.to_string() }],
            )
            .await?;
        Ok(trial)
    }

    async fn ask_in_store(
        &self,
        name: &str,
        run_id: &str,
        options: &AskOptions,
    ) -> Result<(TrialView, Vec<(String, TrialState)>)> {
        let now = now_ms();
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        let expired = Self::sweep(&mut loaded, now)?;
        for &n in &expired {
            loaded.save_trial(n).await?;
        }
        let fixed = if options.fixed.is_empty() && !loaded.row.enqueued.is_empty() {
            loaded.row.enqueued.remove(0)
        } else {
            options.fixed.clone()
        };
        let number = loaded.study.ask(fixed);
        loaded.meta.push(TrialMeta {
            run_id: run_id.to_string(),
            error: None,
            worker: options.worker.clone(),
            lease_expires_ms: options.lease_ms.map(|l| now + l),
            started_ms: now,
            finished_ms: None,
        });
        // A study file's declared space is drawn at once.
        let declared = loaded
            .row
            .spec
            .as_ref()
            .map(StudySpec::from_json)
            .transpose()
            .map_err(|e| corrupt_spec(&e))?;
        if let Some(spec) = &declared {
            spec.suggest_all(&mut loaded.study, number)?;
        }
        loaded.save_trial(number).await?;
        loaded.save_study(now).await?;
        let expired_runs = expired
            .iter()
            .map(|&n| (loaded.meta[n as usize].run_id.clone(), TrialState::Fail))
            .collect();
        let trial = view(&loaded.study, loaded.study.trial(number)?, &loaded.meta[number as usize]);
        loaded.commit().await?;
        if !trial.params.is_empty() {
            self.log_params(run_id, &trial.params).await?;
        }
        Ok((trial, expired_runs))
    }

    async fn log_params(&self, run_id: &str, params: &BTreeMap<String, Value>) -> Result<()> {
        let list: Vec<KeyValue> =
            params.iter().map(|(k, v)| KeyValue { key: k.clone(), value: param_text(v) }).collect();
        for chunk in list.chunks(track::MAX_PARAMS_TAGS_PER_BATCH) {
            self.tracking.log_batch(run_id, &[], chunk, &[]).await?;
        }
        Ok(())
    }

    /// A parameter's value in a running trial (define-by-run): drawn by the study's sampler
    /// the first time, the same value after.
    pub async fn suggest(
        &self,
        name: &str,
        number: u64,
        param: &str,
        dist: &Distribution,
    ) -> Result<Value> {
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        let before = loaded.study.trial(number)?.params.len();
        let value = loaded.study.suggest(number, param, dist)?;
        let changed = loaded.study.trial(number)?.params.len() != before;
        let run_id = loaded.meta[number as usize].run_id.clone();
        if !changed {
            // Suggested before: the same value, nothing written (the study stays in memory).
            loaded.commit().await?;
            return Ok(value);
        }
        loaded.save_trial(number).await?;
        loaded.commit().await?;
        self.log_params(&run_id, &BTreeMap::from([(param.to_string(), value.clone())])).await?;
        Ok(value)
    }

    /// Records an intermediate value: a step of the objective metric in the trial's run.
    pub async fn report(&self, name: &str, number: u64, step: i64, value: f64) -> Result<()> {
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        loaded.study.report(number, step, value)?;
        let run_id = loaded.meta[number as usize].run_id.clone();
        let metric = loaded.row.metrics[0].clone();
        loaded.save_trial(number).await?;
        loaded.commit().await?;
        self.tracking
            .log_batch(
                &run_id,
                &[Metric { key: metric, value, timestamp: now_ms(), step }],
                &[],
                &[],
            )
            .await?;
        Ok(())
    }

    /// The objective metric's history in a trial's run, as (step, value) by step, the last
    /// value logged at each step.
    async fn metric_steps(&self, run_id: &str, metric: &str) -> Result<Vec<(i64, f64)>> {
        let mut by_step: BTreeMap<i64, f64> = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .tracking
                .metric_history(run_id, metric, Some(25_000), token.as_deref())
                .await?;
            for m in &page.items {
                by_step.insert(m.step, m.value);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(by_step.into_iter().collect())
    }

    async fn run_of(&self, name: &str, number: u64) -> Result<(String, Vec<String>)> {
        store::trial_run(&self.db, name, number).await
    }

    /// Whether the study's pruner stops the trial now, from the objective metric's steps in the
    /// trial's run (logged by [`Tuning::report`] or by the objective itself).
    pub async fn should_prune(&self, name: &str, number: u64) -> Result<bool> {
        let (run_id, metrics) = self.run_of(name, number).await?;
        // Several objectives never prune (the study says so): no steps to read.
        let steps = match metrics.as_slice() {
            [metric] => self.metric_steps(&run_id, metric).await?,
            _ => Vec::new(),
        };
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        loaded.study.set_intermediate(number, steps)?;
        let prune = loaded.study.should_prune(number)?;
        loaded.save_trial(number).await?;
        loaded.save_study(now_ms()).await?;
        loaded.commit().await?;
        Ok(prune)
    }

    /// Renews a running trial's lease; false when the trial is no longer running (its lease
    /// expired and it was failed, or it ended), and the worker should stop it.
    pub async fn heartbeat(&self, name: &str, number: u64, lease_ms: i64) -> Result<bool> {
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        if loaded.study.trial(number)?.state != TrialState::Running {
            loaded.commit().await?; // nothing changed: keeps the study in memory
            return Ok(false);
        }
        loaded.meta[number as usize].lease_expires_ms =
            Some(now_ms() + lease_ms.clamp(1_000, 86_400_000));
        loaded.save_trial(number).await?;
        loaded.commit().await?;
        Ok(true)
    }

    /// Ends a trial. COMPLETE without values takes each objective metric's latest value in the
    /// trial's run (what a command objective logged); a metric missing there fails the trial.
    pub async fn tell(
        &self,
        name: &str,
        number: u64,
        state: TrialState,
        values: &[f64],
        error: Option<String>,
    ) -> Result<TrialView> {
        let (run_id, metrics) = self.run_of(name, number).await?;
        // Each objective metric's steps in the run (the first's are the intermediate values).
        let mut logged: Vec<Vec<(i64, f64)>> = Vec::with_capacity(metrics.len());
        for metric in &metrics {
            logged.push(self.metric_steps(&run_id, metric).await?);
        }
        let (state, values, error) = match state {
            // A metric's latest value is its value at the last step (last logged there).
            TrialState::Complete if values.is_empty() => {
                match metrics.iter().zip(&logged).find(|(_, steps)| steps.is_empty()) {
                    Some((metric, _)) => (
                        TrialState::Fail,
                        Vec::new(),
                        Some(error.unwrap_or_else(|| {
                            format!("the objective never logged the metric '{metric}'")
                        })),
                    ),
                    None => (
                        TrialState::Complete,
                        logged.iter().map(|steps| steps.last().expect("not empty").1).collect(),
                        error,
                    ),
                }
            }
            other => (other, values.to_vec(), error),
        };
        let never_logged: Vec<bool> = logged.iter().map(Vec::is_empty).collect();
        let steps = logged.swap_remove(0);
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        if !never_logged[0] && loaded.study.trial(number)?.state == TrialState::Running {
            loaded.study.set_intermediate(number, steps)?;
        }
        let ended = loaded.study.tell(number, state, &values)?;
        let now = now_ms();
        {
            let m = &mut loaded.meta[number as usize];
            m.finished_ms = Some(now);
            m.lease_expires_ms = None;
            m.error = if ended == TrialState::Fail {
                Some(error.unwrap_or_else(|| "the objective value was NaN".to_string()))
            } else {
                None
            };
        }
        loaded.save_trial(number).await?;
        loaded.save_study(now).await?;
        let trial = view(&loaded.study, loaded.study.trial(number)?, &loaded.meta[number as usize]);
        loaded.commit().await?;
        if ended == TrialState::Complete {
            // Values told over the API land in the run as its metrics, where none were logged.
            let step = trial.intermediate.last().map_or(0, |&(s, _)| s);
            let missing: Vec<Metric> = metrics
                .iter()
                .zip(&trial.values)
                .zip(&never_logged)
                .filter(|(_, never)| **never)
                .map(|((metric, &value), _)| Metric {
                    key: metric.clone(),
                    value,
                    timestamp: now,
                    step,
                })
                .collect();
            if !missing.is_empty() {
                self.tracking.log_batch(&run_id, &missing, &[], &[]).await?;
            }
        }
        self.end_run(&run_id, ended).await?;
        Ok(trial)
    }

    /// Deletes a study and its trials. Refused while trials run (their workers still use the
    /// study) unless `force`, which fails them; expired leases are failed first. The trials' runs
    /// and the study's parent run stay in their experiment unless `runs`, which deletes them
    /// (MLflow's soft delete: they can be restored). The name can be used again.
    pub async fn delete_study(&self, name: &str, runs: bool, force: bool) -> Result<DeletedStudy> {
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        let now = now_ms();
        let expired = Self::sweep(&mut loaded, now)?;
        let running: Vec<u64> = loaded
            .study
            .trials()
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .map(|t| t.number)
            .collect();
        if !running.is_empty() && !force {
            return Err(Error::StudyBusy { name: name.to_string(), running: running.len() });
        }
        let run_of = |n: &u64| loaded.meta[*n as usize].run_id.clone();
        let ended: Vec<String> = expired.iter().chain(&running).map(run_of).collect();
        let all: Vec<String> = loaded.meta.iter().map(|m| m.run_id.clone()).collect();
        let parent = loaded.row.parent_run_id.clone();
        let study_id = loaded.row.study_id.clone();
        let trials = all.len();
        loaded.delete().await?;
        // The study is gone: what follows tidies its runs and cannot undo that, so a run that
        // refuses (deleted by a user meanwhile, say) is skipped rather than failing the answer.
        let mut skipped: Vec<String> = Vec::new();
        let mut skip = |run_id: &str, e: &dyn std::fmt::Display| {
            skipped.push(format!("{run_id}: {e}"));
        };
        for run_id in &ended {
            if let Err(e) = self.end_run(run_id, TrialState::Fail).await {
                skip(run_id, &e);
            }
        }
        // The study's own run ends with it.
        match self.tracking.get_run(&parent).await {
            Ok(run) if run.info.status == RunStatus::Running => {
                let ended =
                    self.tracking.update_run(&parent, Some(RunStatus::Finished), Some(now), None);
                if let Err(e) = ended.await {
                    skip(&parent, &e);
                }
            }
            Ok(_) => {}
            Err(e) => skip(&parent, &e),
        }
        let mut runs_deleted = 0;
        if runs {
            for run_id in all.iter().chain([&parent]) {
                let active = self
                    .tracking
                    .get_run(run_id)
                    .await
                    .map(|r| r.info.lifecycle_stage == track::LifecycleStage::Active);
                match active {
                    Ok(false) => {} // deleted already
                    Ok(true) => match self.tracking.delete_run(run_id).await {
                        Ok(()) => runs_deleted += 1,
                        Err(e) => skip(run_id, &e),
                    },
                    Err(e) => skip(run_id, &e),
                }
            }
        }
        Ok(DeletedStudy {
            name: name.to_string(),
            study_id,
            trials,
            running: running.len(),
            runs_deleted,
            runs_skipped: skipped,
        })
    }

    /// Checks that trial `number` of study `name` is the trial of run `run_id`: after a study is
    /// deleted and made again under its name, a client of the old one would otherwise reach the
    /// new one's trial of the same number.
    pub async fn check_run(&self, name: &str, number: u64, run_id: &str) -> Result<()> {
        let (actual, _) = store::trial_run(&self.db, name, number).await?;
        if actual != run_id {
            return Err(Error::TrialOfOtherRun { number, run_id: run_id.to_string() });
        }
        Ok(())
    }

    /// Sets how many trials the study (`study_id`, so not another of its name) is to have, at
    /// least 1: a study file whose `trials` was raised to run more.
    pub async fn set_target(&self, name: &str, study_id: &str, n_trials: u64) -> Result<StudyInfo> {
        if n_trials == 0 {
            return Err(Error::invalid("trials: a study has at least 1 trial"));
        }
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        if loaded.row.study_id != study_id {
            return Err(Error::StudyNotFound { name: name.to_string() });
        }
        let n_trials = i64::try_from(n_trials)
            .map_err(|_| Error::invalid(format!("trials: {n_trials} is too many")))?;
        loaded.save_target(n_trials, now_ms()).await?;
        let info = info(&loaded);
        loaded.commit().await?;
        Ok(info)
    }

    /// Adds a set of parameter values for a coming trial to take (checked against the ranges
    /// its parameters are known by).
    pub async fn enqueue(&self, name: &str, params: BTreeMap<String, Value>) -> Result<()> {
        let mut loaded = store::load(&self.db, &self.cache, name, true).await?;
        check_enqueued(&loaded, &params)?;
        loaded.row.enqueued.push(params);
        loaded.save_study(now_ms()).await?;
        loaded.commit().await
    }
}

/// Refuses enqueued values no known distribution of their parameter holds — those of the study
/// file's space, and those its trials suggested — rather than letting them fail the trial that
/// takes them; a parameter never suggested yet is checked when it is. A study file's parameter
/// must be one of its space's.
fn check_enqueued(loaded: &Loaded, params: &BTreeMap<String, Value>) -> Result<()> {
    let spec = loaded.row.spec.as_ref().map(StudySpec::from_json).transpose();
    let spec = spec.map_err(|e| corrupt_spec(&e))?;
    let declared = spec.as_ref().map(|spec| &spec.params);
    for (name, value) in params {
        let mut known: Vec<&Distribution> =
            declared.into_iter().flatten().filter(|p| p.name == *name).map(|p| &p.dist).collect();
        if declared.is_some() && known.is_empty() {
            return Err(Error::invalid(format!(
                "{name}: not a parameter of the study file's search space"
            )));
        }
        known.extend(loaded.study.distributions_of(name));
        // Fits one of them, or is refused with why it misses the last.
        if let Some(Err(e)) = known.iter().map(|d| d.to_internal(value)).reduce(Result::or) {
            return Err(Error::invalid(format!("{name}: {e}")));
        }
    }
    Ok(())
}

fn corrupt_spec(e: &Error) -> Error {
    Error::Corrupt(format!("the study's file: {e}"))
}

fn study_info(
    row: &StudyRow,
    counts: BTreeMap<String, i64>,
    best: Option<TrialView>,
    best_trials: Vec<TrialView>,
) -> StudyInfo {
    StudyInfo {
        study_id: row.study_id.clone(),
        name: row.name.clone(),
        experiment_id: row.experiment_id.clone(),
        parent_run_id: row.parent_run_id.clone(),
        direction: row.config.direction(),
        metric: row.metrics[0].clone(),
        directions: row.config.directions.clone(),
        metrics: row.metrics.clone(),
        sampler: row.config.sampler.clone(),
        pruner: row.config.pruner.clone(),
        seed: row.config.seed,
        n_trials: row.n_trials,
        spec: row.spec.clone(),
        counts,
        best,
        best_trials,
        created_ms: row.created_ms,
        updated_ms: row.updated_ms,
    }
}

fn info(loaded: &Loaded) -> StudyInfo {
    let mut counts: BTreeMap<String, i64> =
        ["RUNNING", "COMPLETE", "PRUNED", "FAIL"].iter().map(|s| (s.to_string(), 0)).collect();
    for t in loaded.study.trials() {
        *counts.entry(t.state.as_str().to_string()).or_default() += 1;
    }
    let view_of = |t: &Trial| view(&loaded.study, t, &loaded.meta[t.number as usize]);
    let best = loaded.study.best_trial().map(view_of);
    let best_trials = loaded.study.best_trials().into_iter().map(view_of).collect();
    study_info(&loaded.row, counts, best, best_trials)
}
