//! A served model's training data, found through lineage: the model version's run, the dataset
//! versions that run logged as inputs (the one logged with context `training` first), and the
//! Slipway dataset version among them. Skew monitors compare serving windows with it, and the
//! prediction log names a model's input columns after its columns.

use registry::{ModelVersion, Registry};
use slipway_data::profile::{DType, Profile};
use slipway_data::{Data, Version, VersionRef};

/// Column names taken for the target, when a training table has one column more than the model
/// has inputs.
pub const TARGET_NAMES: [&str; 6] = ["label", "target", "y", "class", "outcome", "fall"];

/// The Slipway dataset version `version` was trained on, if its lineage names one.
pub async fn training_dataset(
    registry: &Registry,
    data: &Data,
    version: ModelVersion,
) -> Option<Version> {
    let lineage = registry.lineage(version).await.ok()?;
    let mut inputs: Vec<_> = lineage.datasets.into_iter().filter(|d| d.version.is_some()).collect();
    // Logged for training first; then in the order logged.
    inputs.sort_by_key(|d| d.context.as_deref() != Some("training"));
    for input in inputs {
        let Ok(r) = VersionRef::parse(input.version.as_deref().unwrap_or_default()) else {
            continue;
        };
        if let Ok(v) = data.resolve(&r).await {
            return Some(v);
        }
    }
    None
}

/// The names of a model's `width` inputs, from its training table's profile: its numeric
/// columns when there are `width` of them; with one more, all but the target (a column named
/// as in [`TARGET_NAMES`], else the last one). `None` when the table does not fit.
pub fn input_names(profile: &Profile, width: usize) -> Option<Vec<String>> {
    let numeric: Vec<&str> = profile
        .columns
        .iter()
        .filter(|c| c.dtype.is_numeric() || c.dtype == DType::Boolean)
        .map(|c| c.name.as_str())
        .collect();
    let names: Vec<&str> = if numeric.len() == width {
        numeric
    } else if numeric.len() == width + 1 {
        let target = numeric
            .iter()
            .position(|n| TARGET_NAMES.contains(&n.to_ascii_lowercase().as_str()))
            .unwrap_or(width);
        numeric.iter().enumerate().filter(|(i, _)| *i != target).map(|(_, n)| *n).collect()
    } else {
        return None;
    };
    Some(names.into_iter().map(str::to_string).collect())
}

/// [`input_names`] of a model version's training dataset, if lineage leads to one.
pub async fn model_input_names(
    registry: &Registry,
    data: &Data,
    version: ModelVersion,
    width: usize,
) -> Option<Vec<String>> {
    let dataset = training_dataset(registry, data, version).await?;
    let profile = data.profile(&dataset).await.ok()??;
    input_names(&profile, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(cols: &[(&str, DType)]) -> Profile {
        Profile::new(&cols.iter().map(|(n, t)| (n.to_string(), *t)).collect::<Vec<_>>())
    }

    #[test]
    fn input_names_drop_the_target_and_text_columns() {
        let p = profile(&[
            ("clip", DType::String),
            ("x", DType::Float),
            ("label", DType::Integer),
            ("y", DType::Float),
        ]);
        // `y` is a target name too: the first one found, `label`, is the target.
        assert_eq!(input_names(&p, 2), Some(vec!["x".into(), "y".into()]));
        assert_eq!(input_names(&p, 3), Some(vec!["x".into(), "label".into(), "y".into()]));
        assert_eq!(input_names(&p, 5), None);
        let plain = profile(&[("a", DType::Float), ("b", DType::Float), ("c", DType::Integer)]);
        // No target name: the last column is the target.
        assert_eq!(input_names(&plain, 2), Some(vec!["a".into(), "b".into()]));
    }
}
