//! Outcome metrics of a variant from its ground truth: what each scored row said, what was true,
//! and (for a two-class model) its score for the second class. From these: accuracy; precision,
//! recall and F1 of a positive label; ROC AUC of the scores; and, when labels are numbers, MAE
//! and RMSE. They feed rollout gates and the A/B report.

use serde_json::{Value, json};

use crate::abtest::Rate;

/// The label counted as positive unless a rollout or a report names another.
pub const DEFAULT_POSITIVE: &str = "1";

/// One scored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub said: String,
    pub truth: String,
    /// The model's score for the second class (`probabilities[:, 1]`), when it gives one.
    pub score: Option<f64>,
}

/// A variant's scored rows over some span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcomes {
    pub rows: Vec<Row>,
}

impl Outcomes {
    pub fn n(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Rows the variant got right, of all scored.
    pub fn correct(&self) -> Rate {
        let right = self.rows.iter().filter(|r| r.said == r.truth).count() as u64;
        Rate { successes: right, n: self.n() }
    }

    /// True positives of the rows said positive.
    pub fn precision(&self, positive: &str) -> Rate {
        let said: Vec<&Row> = self.rows.iter().filter(|r| r.said == positive).collect();
        let tp = said.iter().filter(|r| r.truth == positive).count() as u64;
        Rate { successes: tp, n: said.len() as u64 }
    }

    /// True positives of the rows truly positive.
    pub fn recall(&self, positive: &str) -> Rate {
        let truly: Vec<&Row> = self.rows.iter().filter(|r| r.truth == positive).collect();
        let tp = truly.iter().filter(|r| r.said == positive).count() as u64;
        Rate { successes: tp, n: truly.len() as u64 }
    }

    /// The harmonic mean of precision and recall; `None` until both are defined.
    pub fn f1(&self, positive: &str) -> Option<f64> {
        let (p, r) = (self.precision(positive).value()?, self.recall(positive).value()?);
        Some(if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) })
    }

    /// The probability that a positive row scores above a negative one (ties count half): the
    /// Mann–Whitney form of the area under the ROC curve. The score is the model's probability
    /// of its second class, classes ordered as scikit-learn orders them (numbers numerically,
    /// else as text); when the positive label is the first of the two, the score is turned
    /// around. `None` without scores, without both kinds of truth, or with more than two classes.
    pub fn roc_auc(&self, positive: &str) -> Option<f64> {
        let mut classes: Vec<&str> =
            self.rows.iter().flat_map(|r| [r.said.as_str(), r.truth.as_str()]).collect();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() > 2 || !classes.contains(&positive) {
            return None;
        }
        let numeric: Option<Vec<f64>> = classes.iter().map(|c| c.parse::<f64>().ok()).collect();
        let first = match numeric {
            Some(n) if n.len() == 2 => {
                if n[0] <= n[1] {
                    classes[0]
                } else {
                    classes[1]
                }
            }
            _ => classes[0],
        };
        let flip = classes.len() == 2 && positive == first;
        let mut scored: Vec<(f64, bool)> = self
            .rows
            .iter()
            .filter_map(|r| {
                r.score
                    .filter(|s| s.is_finite())
                    .map(|s| (if flip { 1.0 - s } else { s }, r.truth == positive))
            })
            .collect();
        let pos = scored.iter().filter(|(_, p)| *p).count();
        let neg = scored.len() - pos;
        if pos == 0 || neg == 0 {
            return None;
        }
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Sum of the positives' ranks, tied scores sharing their mean rank.
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < scored.len() {
            let mut j = i;
            while j < scored.len() && scored[j].0 == scored[i].0 {
                j += 1;
            }
            let mean_rank = (i + 1 + j) as f64 / 2.0;
            rank_sum += mean_rank * scored[i..j].iter().filter(|(_, p)| *p).count() as f64;
            i = j;
        }
        let (pos, neg) = (pos as f64, neg as f64);
        Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
    }

    /// Absolute errors' mean and squared errors' mean root, when every label is a number. An
    /// answer that is not finite (a NaN the model gave) makes the errors infinite.
    pub fn regression(&self) -> Option<(f64, f64)> {
        if self.rows.is_empty() {
            return None;
        }
        let (mut abs, mut sq) = (0.0, 0.0);
        for r in &self.rows {
            let (s, t) = (r.said.parse::<f64>().ok()?, r.truth.parse::<f64>().ok()?);
            if !t.is_finite() {
                return None;
            }
            if !s.is_finite() {
                return Some((f64::INFINITY, f64::INFINITY));
            }
            abs += (s - t).abs();
            sq += (s - t) * (s - t);
        }
        let n = self.rows.len() as f64;
        Some((abs / n, (sq / n).sqrt()))
    }

    /// A gate's metric, or why it cannot be computed yet.
    pub fn metric(&self, name: &str, positive: &str) -> Result<f64, String> {
        let undefined = |what: &str| Err(format!("{name} is undefined: {what}"));
        match name {
            "accuracy" => self.correct().value().ok_or_else(|| "no rows with ground truth".into()),
            // As scikit-learn with zero_division=0: a variant that never says the positive label
            // has a precision (and F1) of 0, not an undefined one that would hold a gate forever.
            "precision" => Ok(self.precision(positive).value().unwrap_or(0.0)),
            "recall" => match self.recall(positive).value() {
                Some(v) => Ok(v),
                None => undefined(&format!("no rows truly '{positive}' yet")),
            },
            "f1" => match self.recall(positive).value() {
                Some(_) => Ok(self.f1(positive).unwrap_or(0.0)),
                None => undefined(&format!("no rows truly '{positive}' yet")),
            },
            "roc_auc" => match self.roc_auc(positive) {
                Some(v) => Ok(v),
                None => undefined("it needs a two-class model's scores and both kinds of truth"),
            },
            "mae" | "rmse" => match self.regression() {
                Some((mae, rmse)) => Ok(if name == "mae" { mae } else { rmse }),
                None => undefined("the labels are not all numbers"),
            },
            other => Err(format!("{other} is not an outcome metric")),
        }
    }

    /// Every metric that can be computed, for reports and gate figures.
    pub fn figures(&self, positive: &str) -> Value {
        let regression = self.regression();
        json!({
            "feedback_rows": self.n(),
            "accuracy": self.correct().value(),
            "precision": self.precision(positive).value(),
            "recall": self.recall(positive).value(),
            "f1": self.f1(positive),
            "roc_auc": self.roc_auc(positive),
            "mae": regression.map(|r| r.0),
            "rmse": regression.map(|r| r.1),
        })
    }
}

/// Whether a larger value of an outcome metric is better (classification) or worse (errors).
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "mae" | "rmse")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(said: &[&str], truth: &[&str], scores: &[Option<f64>]) -> Outcomes {
        Outcomes {
            rows: said
                .iter()
                .zip(truth)
                .zip(scores.iter().chain(std::iter::repeat(&None)))
                .map(|((s, t), sc)| Row { said: s.to_string(), truth: t.to_string(), score: *sc })
                .collect(),
        }
    }

    #[test]
    fn classification_metrics_match_their_definitions() {
        // tp 2, fp 1, fn 1, tn 2.
        let o = rows(&["1", "1", "1", "0", "0", "0"], &["1", "1", "0", "1", "0", "0"], &[]);
        assert_eq!(o.correct(), Rate { successes: 4, n: 6 });
        assert_eq!(o.precision("1"), Rate { successes: 2, n: 3 });
        assert_eq!(o.recall("1"), Rate { successes: 2, n: 3 });
        assert!((o.f1("1").unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // Another positive label turns the table.
        assert_eq!(o.precision("0"), Rate { successes: 2, n: 3 });
        // A label never said has a precision of 0 (scikit-learn's zero_division=0); one never
        // true leaves recall undefined.
        assert_eq!(o.metric("precision", "fall").unwrap(), 0.0);
        assert!(o.metric("recall", "fall").unwrap_err().contains("no rows truly 'fall'"));
        assert!(o.regression().is_some() && o.roc_auc("1").is_none());
    }

    #[test]
    fn roc_auc_counts_pairs_and_halves_ties() {
        let s = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
        // Perfect ordering, then the reverse, then one tie across the classes.
        let t = ["0", "0", "1", "1"];
        assert_eq!(rows(&t, &t, &s(&[0.1, 0.2, 0.8, 0.9])).roc_auc("1"), Some(1.0));
        assert_eq!(rows(&t, &t, &s(&[0.9, 0.8, 0.2, 0.1])).roc_auc("1"), Some(0.0));
        // Pairs (pos, neg): (0.5 vs 0.1) win, (0.5 vs 0.5) tie, (0.9 vs both) win: 3.5 of 4.
        assert_eq!(rows(&t, &t, &s(&[0.1, 0.5, 0.5, 0.9])).roc_auc("1"), Some(0.875));
        // The score is the second class's: with "0" positive it is turned around, so a model
        // that ranks perfectly does so for either label.
        assert_eq!(rows(&t, &t, &s(&[0.1, 0.2, 0.8, 0.9])).roc_auc("0"), Some(1.0));
        // Text classes in sorted order: "fall" < "ok", so a score for "ok" is turned for "fall".
        let ft = ["ok", "ok", "fall", "fall"];
        assert_eq!(rows(&ft, &ft, &s(&[0.1, 0.2, 0.8, 0.9])).roc_auc("fall"), Some(0.0));
        assert_eq!(rows(&ft, &ft, &s(&[0.9, 0.8, 0.2, 0.1])).roc_auc("fall"), Some(1.0));
        // Brute force over random rows agrees.
        let mut x = 7u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let data: Vec<(f64, bool)> =
            (0..300).map(|_| ((next() % 50) as f64 / 50.0, next() % 3 == 0)).collect();
        let o = Outcomes {
            rows: data
                .iter()
                .map(|(sc, p)| Row {
                    said: if *p { "1" } else { "0" }.into(),
                    truth: if *p { "1" } else { "0" }.into(),
                    score: Some(*sc),
                })
                .collect(),
        };
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (a, pa) in &data {
            for (b, pb) in &data {
                if *pa && !*pb {
                    pairs += 1.0;
                    wins += if a > b {
                        1.0
                    } else if a == b {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((o.roc_auc("1").unwrap() - wins / pairs).abs() < 1e-12);
    }

    #[test]
    fn regression_errors_need_numbers() {
        let o = rows(&["1.5", "2", "-1"], &["1", "4", "-1"], &[]);
        let (mae, rmse) = o.regression().unwrap();
        assert!((mae - 2.5 / 3.0).abs() < 1e-12);
        assert!((rmse - (4.25f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(rows(&["fall"], &["1"], &[]).metric("mae", "1").unwrap_err().contains("numbers"));
        // A NaN answer makes the errors infinite: no gate passes on it.
        assert_eq!(
            rows(&["NaN", "1"], &["1", "1"], &[]).regression(),
            Some((f64::INFINITY, f64::INFINITY))
        );
        assert!(Outcomes::default().metric("accuracy", "1").is_err());
        assert!(!higher_is_better("rmse") && higher_is_better("roc_auc"));
    }
}
