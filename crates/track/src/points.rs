//! Metric points packed into chunks (the `metric_chunks` table): little-endian
//! `(step i64, timestamp i64, value f64 bits)` triples, 24 bytes a point. Values keep their exact
//! bits, NaN and ±Infinity included.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::types::Metric;

pub(crate) const POINT_BYTES: usize = 24;

/// A point without its key (a chunk belongs to one key).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub step: i64,
    pub timestamp: i64,
    pub value: f64,
}

impl Point {
    pub(crate) fn of(m: &Metric) -> Point {
        Point { step: m.step, timestamp: m.timestamp, value: m.value }
    }

    pub(crate) fn into_metric(self, key: &str) -> Metric {
        Metric {
            key: key.to_string(),
            value: self.value,
            timestamp: self.timestamp,
            step: self.step,
        }
    }

    /// MLflow's history order: timestamp, then step, then value, with NaN ordered as 0 (the
    /// value MLflow's SQL store keeps for it).
    pub(crate) fn history_cmp(&self, other: &Point) -> Ordering {
        let v = |p: &Point| if p.value.is_nan() { 0.0 } else { p.value };
        (self.timestamp, self.step)
            .cmp(&(other.timestamp, other.step))
            .then_with(|| v(self).partial_cmp(&v(other)).unwrap_or(Ordering::Equal))
    }
}

pub(crate) fn encode_into(out: &mut Vec<u8>, points: impl IntoIterator<Item = Point>) {
    for p in points {
        out.extend_from_slice(&p.step.to_le_bytes());
        out.extend_from_slice(&p.timestamp.to_le_bytes());
        out.extend_from_slice(&p.value.to_bits().to_le_bytes());
    }
}

pub(crate) fn decode_into(data: &[u8], out: &mut Vec<Point>) -> Result<()> {
    if !data.len().is_multiple_of(POINT_BYTES) {
        return Err(Error::Corrupt(format!(
            "a metric chunk of {} bytes is not a whole number of points",
            data.len()
        )));
    }
    out.reserve(data.len() / POINT_BYTES);
    for p in data.chunks_exact(POINT_BYTES) {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&p[i * 8..i * 8 + 8]);
            b
        };
        out.push(Point {
            step: i64::from_le_bytes(word(0)),
            timestamp: i64::from_le_bytes(word(1)),
            value: f64::from_bits(u64::from_le_bytes(word(2))),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_bit_for_bit() {
        let values = [0.1, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 5e-324, f64::MAX];
        let points: Vec<Point> = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point { step: i as i64 - 3, timestamp: i64::MAX - i as i64, value })
            .collect();
        let mut data = Vec::new();
        encode_into(&mut data, points.iter().copied());
        assert_eq!(data.len(), points.len() * POINT_BYTES);
        let mut back = Vec::new();
        decode_into(&data, &mut back).unwrap();
        for (a, b) in points.iter().zip(&back) {
            assert_eq!(
                (a.step, a.timestamp, a.value.to_bits()),
                (b.step, b.timestamp, b.value.to_bits())
            );
        }
        assert!(decode_into(&data[1..], &mut back).is_err());
    }

    #[test]
    fn history_order_is_timestamp_step_value_with_nan_as_zero() {
        let p = |timestamp, step, value| Point { step, timestamp, value };
        let mut points =
            [p(2, 0, 1.0), p(1, 5, 0.5), p(1, 5, f64::NAN), p(1, 5, -1.0), p(1, 2, 9.0)];
        points.sort_by(Point::history_cmp);
        let got: Vec<(i64, i64, String)> =
            points.iter().map(|p| (p.timestamp, p.step, p.value.to_string())).collect();
        let want = [(1, 2, "9"), (1, 5, "-1"), (1, 5, "NaN"), (1, 5, "0.5"), (2, 0, "1")];
        assert_eq!(got, want.map(|(t, s, v)| (t, s, v.to_string())));
    }
}
