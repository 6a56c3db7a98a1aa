//! A study held in memory: its configuration, the parameter keys its trials used, and its trials;
//! the trial life cycle (ask, suggest, report, should-prune, tell) that samplers and pruners see.
//!
//! Nothing here is stored: the store loads a [`Study`], applies one operation, and writes back
//! what changed, so every replica and worker decides from the same history. Sampling is
//! stateless too: a trial's random stream is derived from the study's seed and the trial's
//! number, so a seeded study is reproducible however its requests are spread.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::config::{Direction, SamplerConfig, StudyConfig};
use crate::error::{Error, Result};
use crate::pruners;
use crate::rng::Rng;
use crate::samplers;
use crate::space::Distribution;

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Fail,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Fail => "FAIL",
        }
    }

    pub fn parse(s: &str) -> Result<TrialState> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "RUNNING" => TrialState::Running,
            "COMPLETE" => TrialState::Complete,
            "PRUNED" => TrialState::Pruned,
            "FAIL" => TrialState::Fail,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown trial state {s:?} (expected RUNNING, COMPLETE, PRUNED or FAIL)"
                )));
            }
        })
    }

    /// Complete and pruned trials are what samplers learn from.
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned)
    }
}

/// A parameter's name and distribution; trials refer to keys by index.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub dist: Distribution,
}

/// One trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub number: u64,
    pub state: TrialState,
    /// (key index, internal value), in suggestion order.
    pub params: Vec<(u32, f64)>,
    /// The joint sample drawn at the trial's first suggestion, published so that other workers'
    /// samplers can treat the trial as a liar before it has all its params (constant liar).
    pub relative: Option<Vec<(u32, f64)>>,
    /// Values given in advance (enqueued trials, fixed params), by name, used when suggested.
    pub fixed: BTreeMap<String, Value>,
    /// One per objective once complete; a pruned trial's last intermediate value; empty otherwise.
    pub values: Vec<f64>,
    /// (step, value), by step.
    pub intermediate: Vec<(i64, f64)>,
    /// Successive halving's value at each rung this trial passed.
    pub rungs: Vec<f64>,
}

impl Trial {
    /// The (first) objective's value.
    pub fn value(&self) -> Option<f64> {
        self.values.first().copied()
    }

    pub fn last_step(&self) -> Option<i64> {
        self.intermediate.last().map(|&(s, _)| s)
    }

    pub fn intermediate_at(&self, step: i64) -> Option<f64> {
        self.intermediate
            .binary_search_by_key(&step, |&(s, _)| s)
            .ok()
            .map(|i| self.intermediate[i].1)
    }
}

/// State a pruner estimated once and keeps for the study's life.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PrunerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resource: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resource: Option<i64>,
}

/// A study and its trials.
#[derive(Debug, Clone)]
pub struct Study {
    pub config: StudyConfig,
    pub pruner_state: PrunerState,
    keys: Vec<Key>,
    key_ids: HashMap<String, Vec<u32>>,
    /// Per key, each trial's internal value (NaN where the trial lacks it): what TPE gathers.
    columns: Vec<Vec<f64>>,
    trials: Vec<Trial>,
    /// Keys every finished trial has (None before the first finished trial).
    intersection: Option<Vec<u32>>,
    n_finished: usize,
    n_complete: usize,
    /// The last multi-objective split of the complete trials, keyed by the complete trials'
    /// count and the good set's size: trials only ever end, so the same count means the same
    /// complete trials. It spares a univariate sampler the split for each parameter of a trial.
    split_cache: Memo<(usize, usize), samplers::MultiSplit>,
    /// A grid sampler's shuffled order of combinations, keyed by the grid's size.
    grid_cache: Memo<usize, Vec<u32>>,
    /// The kriging believer's kernel, keyed by its dimensions' keys and the history's stretch.
    believer_cache: Kernels,
}

/// The believer's kernels, for each set of dimensions a sampler fits (the joint one, and each
/// parameter sampled on its own): the trial numbers each was searched on, and the kernel found
/// (None: none could be fitted). Clones start empty.
#[derive(Default)]
struct Kernels(std::sync::Mutex<KernelMap>);

/// Dimensions' keys → (trial numbers searched on, kernel).
type KernelMap = HashMap<Vec<u32>, (Vec<u64>, SharedKernel)>;

/// A kernel search's outcome, shared by the trials that use it.
type SharedKernel = std::sync::Arc<Option<crate::gp::Kernel>>;

impl Clone for Kernels {
    fn clone(&self) -> Kernels {
        Kernels::default()
    }
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kernels")
    }
}

/// One value kept with the key it was made for, remade when asked for another key. Clones start
/// empty (a copy of a study recomputes what it needs).
struct Memo<K, V>(std::sync::Mutex<Option<(K, std::sync::Arc<V>)>>);

impl<K: PartialEq, V> Memo<K, V> {
    /// The value for `key`, made by `make` unless the one kept is for that key.
    fn get(&self, key: K, make: impl FnOnce() -> V) -> std::sync::Arc<V> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, v)) = kept.as_ref()
            && *k == key
        {
            return v.clone();
        }
        let v = std::sync::Arc::new(make());
        *kept = Some((key, v.clone()));
        v
    }
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Memo<K, V> {
        Memo(std::sync::Mutex::new(None))
    }
}

impl<K, V> Clone for Memo<K, V> {
    fn clone(&self) -> Memo<K, V> {
        Memo::default()
    }
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

impl Study {
    pub fn new(config: StudyConfig) -> Study {
        Study {
            config,
            pruner_state: PrunerState::default(),
            keys: Vec::new(),
            key_ids: HashMap::new(),
            columns: Vec::new(),
            trials: Vec::new(),
            intersection: None,
            n_finished: 0,
            n_complete: 0,
            split_cache: Memo::default(),
            grid_cache: Memo::default(),
            believer_cache: Kernels::default(),
        }
    }

    /// The believer's kernel for dimensions `key`, searched on trials `numbers` by `search`
    /// unless the one kept for `key` was searched on the same trials.
    pub(crate) fn believer_kernel(
        &self,
        key: Vec<u32>,
        numbers: Vec<u64>,
        search: impl FnOnce() -> Option<crate::gp::Kernel>,
    ) -> SharedKernel {
        let mut kept = self.believer_cache.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((on, kernel)) = kept.get(&key)
            && *on == numbers
        {
            return kernel.clone();
        }
        let kernel = std::sync::Arc::new(search());
        if kept.len() >= 256 && !kept.contains_key(&key) {
            kept.clear();
        }
        kept.insert(key, (numbers, kernel.clone()));
        kernel
    }

    /// The order of a grid of `size` combinations, made by `shuffle` once per size (it depends
    /// only on the study's seed and the size).
    pub(crate) fn grid_order(
        &self,
        size: usize,
        shuffle: impl FnOnce() -> Vec<u32>,
    ) -> std::sync::Arc<Vec<u32>> {
        self.grid_cache.get(size, shuffle)
    }

    /// The multi-objective split of the complete trials into `n_below` good ones and the rest,
    /// computed by `split` once per set of complete trials.
    pub(crate) fn multi_split(
        &self,
        n_below: usize,
        split: impl FnOnce() -> samplers::MultiSplit,
    ) -> std::sync::Arc<samplers::MultiSplit> {
        self.split_cache.get((self.n_complete, n_below), split)
    }

    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    pub fn trial(&self, number: u64) -> Result<&Trial> {
        self.trials.get(number as usize).ok_or(Error::TrialNotFound { number })
    }

    pub fn key(&self, id: u32) -> &Key {
        &self.keys[id as usize]
    }

    pub fn n_finished(&self) -> usize {
        self.n_finished
    }

    pub fn n_complete(&self) -> usize {
        self.n_complete
    }

    /// The distributions trials have suggested `name` with.
    pub fn distributions_of(&self, name: &str) -> impl Iterator<Item = &Distribution> {
        let ids = self.key_ids.get(name).map(Vec::as_slice).unwrap_or_default();
        ids.iter().map(|&id| &self.keys[id as usize].dist)
    }

    /// The index of a (name, distribution) pair, added if new.
    pub fn intern(&mut self, name: &str, dist: &Distribution) -> u32 {
        if let Some(ids) = self.key_ids.get(name) {
            for &id in ids {
                if self.keys[id as usize].dist == *dist {
                    return id;
                }
            }
        }
        let id = self.keys.len() as u32;
        self.keys.push(Key { name: name.to_string(), dist: dist.clone() });
        self.columns.push(Vec::new());
        self.key_ids.entry(name.to_string()).or_default().push(id);
        id
    }

    /// Every key with this name (more than one when a range changed during the study).
    pub(crate) fn ids_named(&self, name: &str) -> &[u32] {
        self.key_ids.get(name).map_or(&[], Vec::as_slice)
    }

    /// Adds a trial as loaded from the store; trials must come in number order.
    pub fn push_trial(&mut self, trial: Trial) -> Result<()> {
        if trial.number != self.trials.len() as u64 {
            return Err(Error::invalid(format!(
                "trial {} loaded out of order (expected {})",
                trial.number,
                self.trials.len()
            )));
        }
        let finished = trial.state.is_finished();
        let complete = trial.state == TrialState::Complete;
        let number = trial.number;
        for &(id, v) in &trial.params {
            if id as usize >= self.keys.len() {
                return Err(Error::invalid(format!(
                    "trial {number} names parameter key {id}, which is not interned"
                )));
            }
            self.set_column(id, number, v);
        }
        self.trials.push(trial);
        if finished {
            self.count_finished(number, complete);
        }
        Ok(())
    }

    /// Adds the next trial, or replaces one with what the store now holds for it (another
    /// process changed it: a running trial gained params, values or an end). A finished trial
    /// keeps its state; one that seems to change it is refused.
    pub fn put_trial(&mut self, trial: Trial) -> Result<()> {
        let number = trial.number as usize;
        if number >= self.trials.len() {
            return self.push_trial(trial);
        }
        let old = &self.trials[number];
        let was_finished = old.state.is_finished();
        if was_finished && old.state != trial.state {
            return Err(Error::invalid(format!("trial {number} changed state after it finished")));
        }
        if let Some(&(id, _)) = trial.params.iter().find(|&&(id, _)| id as usize >= self.keys.len())
        {
            return Err(Error::invalid(format!(
                "trial {number} names parameter key {id}, which is not interned"
            )));
        }
        let gone: Vec<u32> = old
            .params
            .iter()
            .map(|&(id, _)| id)
            .filter(|id| !trial.params.iter().any(|(i, _)| i == id))
            .collect();
        for id in gone {
            self.set_column(id, number as u64, f64::NAN);
        }
        for &(id, v) in &trial.params {
            self.set_column(id, number as u64, v);
        }
        let (finished, complete) = (trial.state.is_finished(), trial.state == TrialState::Complete);
        self.trials[number] = trial;
        if finished && !was_finished {
            self.count_finished(number as u64, complete);
        }
        Ok(())
    }

    fn set_column(&mut self, id: u32, number: u64, value: f64) {
        let column = &mut self.columns[id as usize];
        if column.len() <= number as usize {
            column.resize(number as usize + 1, f64::NAN);
        }
        column[number as usize] = value;
    }

    /// Key `id`'s values by trial number, NaN where a trial has none (the column may end before
    /// the last trial).
    pub(crate) fn column(&self, id: u32) -> &[f64] {
        &self.columns[id as usize]
    }

    /// Trial `number`'s value of key `id`, if it has one.
    pub(crate) fn column_value(&self, id: u32, number: u64) -> Option<f64> {
        self.column(id).get(number as usize).copied().filter(|v| !v.is_nan())
    }

    fn count_finished(&mut self, number: u64, complete: bool) {
        self.n_finished += 1;
        if complete {
            self.n_complete += 1;
        }
        let mut ids: Vec<u32> =
            self.trials[number as usize].params.iter().map(|&(id, _)| id).collect();
        ids.sort_unstable();
        self.intersection = Some(match self.intersection.take() {
            None => ids,
            Some(mut kept) => {
                kept.retain(|id| ids.binary_search(id).is_ok());
                kept
            }
        });
    }

    /// Keys every finished trial used, sorted by name, single-valued ones left out: the space
    /// a multivariate sampler draws jointly.
    pub(crate) fn joint_space(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .intersection
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|&id| !self.keys[id as usize].dist.is_single())
            .collect();
        ids.sort_by(|&a, &b| self.keys[a as usize].name.cmp(&self.keys[b as usize].name));
        ids
    }

    /// Starts a trial; `fixed` gives values (by parameter name) to use when they are suggested.
    pub fn ask(&mut self, fixed: BTreeMap<String, Value>) -> u64 {
        let number = self.trials.len() as u64;
        self.trials.push(Trial {
            number,
            state: TrialState::Running,
            params: Vec::new(),
            relative: None,
            fixed,
            values: Vec::new(),
            intermediate: Vec::new(),
            rungs: Vec::new(),
        });
        number
    }

    fn running(&self, number: u64) -> Result<&Trial> {
        let trial = self.trial(number)?;
        if trial.state != TrialState::Running {
            return Err(Error::TrialFinished { number, state: trial.state.as_str() });
        }
        Ok(trial)
    }

    /// The value of parameter `name` in trial `number`, drawn by the study's sampler on first
    /// use (define-by-run), as the user sees it.
    pub fn suggest(&mut self, number: u64, name: &str, dist: &Distribution) -> Result<Value> {
        let internal = self.suggest_internal(number, name, dist)?;
        Ok(dist.to_external(internal))
    }

    pub fn suggest_internal(
        &mut self,
        number: u64,
        name: &str,
        dist: &Distribution,
    ) -> Result<f64> {
        if name.is_empty() {
            return Err(Error::invalid("name: a parameter needs a name"));
        }
        let trial = self.running(number)?;
        // (a) Already suggested in this trial: the same value, if the range is the same.
        if let Some(&(id, v)) =
            trial.params.iter().find(|&&(id, _)| self.keys[id as usize].name == name)
        {
            let key = &self.keys[id as usize];
            if key.dist != *dist {
                return Err(Error::invalid(format!(
                    "{name}: already suggested in trial {number} as {}, now asked as {}",
                    key.dist.describe(),
                    dist.describe()
                )));
            }
            return Ok(v);
        }
        // (b) A value given in advance, (c) a range of one value.
        let value = if let Some(given) = trial.fixed.get(name) {
            dist.to_internal(given).map_err(|e| Error::invalid(format!("{name}: {e}")))?
        } else if dist.is_single() {
            dist.single_value()
        } else {
            // (d) The joint sample, drawn at the first suggestion; (e) otherwise one dimension.
            if trial.relative.is_none() {
                let relative = samplers::sample_relative(self, number);
                self.trials[number as usize].relative = Some(relative);
            }
            let trial = &self.trials[number as usize];
            let joint = trial.relative.as_deref().unwrap_or(&[]).iter().find(|&&(id, v)| {
                let key = &self.keys[id as usize];
                key.name == name && key.dist == *dist && dist.contains(v)
            });
            match joint {
                Some(&(_, v)) => v,
                None => samplers::sample_independent(self, number, name, dist),
            }
        };
        let id = self.intern(name, dist);
        self.trials[number as usize].params.push((id, value));
        self.set_column(id, number, value);
        Ok(value)
    }

    /// Records a trial's intermediate value at `step` (the first report of a step wins).
    pub fn report(&mut self, number: u64, step: i64, value: f64) -> Result<()> {
        self.running(number)?;
        if self.config.is_multi_objective() {
            return Err(Error::invalid(
                "step: a multi-objective study's trials report no intermediate values (pruning \
                 needs a single objective)",
            ));
        }
        if step < 0 {
            return Err(Error::invalid(format!("step: must be ≥ 0, got {step}")));
        }
        if value.is_infinite() {
            return Err(Error::invalid(format!("value: must be finite or NaN, got {value}")));
        }
        let trial = &mut self.trials[number as usize];
        if let Err(at) = trial.intermediate.binary_search_by_key(&step, |&(s, _)| s) {
            trial.intermediate.insert(at, (step, value));
        }
        Ok(())
    }

    /// Replaces a running trial's intermediate values (read back from its run's metric history,
    /// where the objective may have logged them itself).
    pub fn set_intermediate(&mut self, number: u64, steps: Vec<(i64, f64)>) -> Result<()> {
        self.running(number)?;
        if self.config.is_multi_objective() {
            return Ok(());
        }
        let mut steps = steps;
        steps.retain(|&(s, v)| s >= 0 && !v.is_infinite());
        steps.sort_by_key(|&(s, _)| s);
        steps.dedup_by_key(|p| p.0);
        self.trials[number as usize].intermediate = steps;
        Ok(())
    }

    /// Whether the study's pruner stops trial `number` at its latest reported step.
    /// A multi-objective study never prunes (as in Optuna).
    pub fn should_prune(&mut self, number: u64) -> Result<bool> {
        self.running(number)?;
        if self.config.is_multi_objective() {
            return Ok(false);
        }
        Ok(pruners::should_prune(self, number))
    }

    pub(crate) fn trial_mut(&mut self, number: u64) -> &mut Trial {
        &mut self.trials[number as usize]
    }

    /// Ends a trial. A complete trial needs a finite value per objective (a NaN fails it, as in
    /// Optuna); a pruned one takes its last intermediate value; a failed one has none.
    pub fn tell(&mut self, number: u64, state: TrialState, values: &[f64]) -> Result<TrialState> {
        let trial = self.running(number)?;
        let n_objectives = self.config.n_objectives();
        let (state, values) = match state {
            TrialState::Running => {
                return Err(Error::invalid("state: a trial cannot be told RUNNING"));
            }
            TrialState::Complete => {
                if values.is_empty() {
                    return Err(Error::invalid(
                        "value: a complete trial needs its objective value",
                    ));
                }
                if values.len() != n_objectives {
                    return Err(Error::invalid(format!(
                        "values: the study has {n_objectives} objective{}, got {} value{}",
                        if n_objectives == 1 { "" } else { "s" },
                        values.len(),
                        if values.len() == 1 { "" } else { "s" },
                    )));
                }
                if let Some(v) = values.iter().find(|v| v.is_infinite()) {
                    return Err(Error::invalid(format!("value: must be finite, got {v}")));
                }
                if values.iter().any(|v| v.is_nan()) {
                    (TrialState::Fail, Vec::new())
                } else {
                    (TrialState::Complete, values.to_vec())
                }
            }
            TrialState::Pruned => {
                if n_objectives > 1 {
                    return Err(Error::invalid(
                        "state: a multi-objective study's trials cannot be pruned",
                    ));
                }
                // Its last intermediate value, when it is a number (the store keeps no NaN).
                (
                    TrialState::Pruned,
                    trial
                        .intermediate
                        .last()
                        .map(|&(_, v)| v)
                        .filter(|v| !v.is_nan())
                        .into_iter()
                        .collect(),
                )
            }
            TrialState::Fail => (TrialState::Fail, Vec::new()),
        };
        let trial = &mut self.trials[number as usize];
        trial.state = state;
        trial.values = values;
        if state.is_finished() {
            self.count_finished(number, state == TrialState::Complete);
        }
        Ok(state)
    }

    /// The (first) objective as a loss: smaller is better whatever the direction.
    pub(crate) fn loss(&self, value: f64) -> f64 {
        self.loss_of(0, value)
    }

    /// Objective `i` as a loss.
    pub(crate) fn loss_of(&self, i: usize, value: f64) -> f64 {
        match self.config.directions[i] {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }

    /// A complete trial's values as losses, one per objective.
    pub(crate) fn losses(&self, trial: &Trial) -> Vec<f64> {
        trial.values.iter().enumerate().map(|(i, &v)| self.loss_of(i, v)).collect()
    }

    /// The best complete trial (the earliest among equals); none in a multi-objective study,
    /// which has [`Study::best_trials`] instead.
    pub fn best_trial(&self) -> Option<&Trial> {
        if self.config.is_multi_objective() {
            return None;
        }
        self.trials.iter().filter(|t| t.state == TrialState::Complete).min_by(|a, b| {
            self.loss(a.value().unwrap_or(f64::NAN))
                .total_cmp(&self.loss(b.value().unwrap_or(f64::NAN)))
        })
    }

    /// The complete trials no other complete trial dominates (the Pareto front), by number; with
    /// one objective, the best trial. Trials with equal values are all kept, as in Optuna.
    pub fn best_trials(&self) -> Vec<&Trial> {
        if !self.config.is_multi_objective() {
            return self.best_trial().into_iter().collect();
        }
        let complete: Vec<&Trial> =
            self.trials.iter().filter(|t| t.state == TrialState::Complete).collect();
        let losses: Vec<Vec<f64>> = complete.iter().map(|t| self.losses(t)).collect();
        crate::pareto::front(&losses).into_iter().map(|i| complete[i]).collect()
    }

    /// A trial's params by name, as the user sees them.
    pub fn params_of(&self, trial: &Trial) -> BTreeMap<String, Value> {
        trial
            .params
            .iter()
            .map(|&(id, v)| {
                let key = self.key(id);
                (key.name.clone(), key.dist.to_external(v))
            })
            .collect()
    }

    /// The trial's random stream for one purpose (0: the joint sample; otherwise a parameter).
    pub(crate) fn rng(&self, number: u64, purpose: u64) -> Rng {
        Rng::for_trial(self.config.seed, number, purpose)
    }

    pub(crate) fn sampler(&self) -> &SamplerConfig {
        &self.config.sampler
    }
}
