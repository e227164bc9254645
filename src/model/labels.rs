//! Label sets and attribute maps: building `Map<Utf8, Utf8>` columns from
//! Rust pairs, reading them back row by row, and the stable 64-bit series /
//! stream id that identifies a label set (xxh3 over the sorted pairs, so the
//! same labels hash the same in every process and every release).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, MapArray, StringArray, StringBuilder, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field};

use super::string_map_entry_fields;

/// A series' label set as PromQL sees it, `__name__` included, sorted by
/// label name, as Prometheus keeps it. Shared: a series' labels are built
/// once (when its block's series directory is loaded) and every step of a
/// query that passes them on clones a pointer; a change through `DerefMut`
/// copies them first when they are shared (`Arc::make_mut`).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<Vec<(String, String)>>);

impl Labels {
    /// A series' label set from its metric name (`__name__`, left out when
    /// empty) and label pairs, empty values dropped, sorted by name.
    pub fn of_series(metric: &str, pairs: &[(impl AsRef<str>, impl AsRef<str>)]) -> Self {
        let mut labels = Vec::with_capacity(pairs.len() + 1);
        if !metric.is_empty() {
            labels.push(("__name__".to_string(), metric.to_string()));
        }
        labels.extend(
            pairs
                .iter()
                .filter(|(_, v)| !v.as_ref().is_empty())
                .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())),
        );
        sort_labels(&mut labels);
        labels.into()
    }

    /// The label pairs, copied out when shared.
    pub fn into_vec(self) -> Vec<(String, String)> {
        Arc::unwrap_or_clone(self.0)
    }
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Deref for Labels {
    type Target = Vec<(String, String)>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Labels {
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(&mut self.0)
    }
}

impl From<Vec<(String, String)>> for Labels {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Labels(Arc::new(pairs))
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Labels(Arc::new(pairs.into_iter().collect()))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

/// Sorts label pairs by name (the order Prometheus keeps them in).
pub fn sort_labels(labels: &mut [(String, String)]) {
    labels.sort_by(|a, b| a.0.cmp(&b.0));
}

/// A sorted, de-duplicated list of `name=value` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSet(Vec<(String, String)>);

impl LabelSet {
    /// Sorts by name; for duplicate names the last value wins.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        LabelSet(canonical_pairs(pairs))
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Sorts pairs by name (stably) and keeps the last value of a repeated name:
/// the canonical form of a label set.
pub fn canonical_pairs<K: Ord, V>(mut pairs: Vec<(K, V)>) -> Vec<(K, V)> {
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(K, V)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    out
}

/// The stable id of a series (metric name + labels) or a log stream (labels
/// only, `name = ""`). Returned as `i64` because Postgres has no unsigned
/// integers.
pub fn series_id(name: &str, labels: &[(impl AsRef<str>, impl AsRef<str>)]) -> i64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(name.as_bytes());
    hasher.update(&[0xff]);
    for (k, v) in labels {
        hasher.update(k.as_ref().as_bytes());
        hasher.update(&[0xfe]);
        hasher.update(v.as_ref().as_bytes());
        hasher.update(&[0xff]);
    }
    hasher.digest() as i64
}

/// Builds a non-null `Map<Utf8, Utf8>` column, one map per row, keeping the
/// given pair order (callers pass sorted label sets).
pub fn build_string_map<'a, I, P>(rows: I) -> MapArray
where
    I: IntoIterator<Item = P>,
    P: IntoIterator<Item = (&'a str, &'a str)>,
{
    build_string_map_with_nulls(rows, None)
}

/// [`build_string_map`] with a null mask (null rows should have no pairs).
pub fn build_string_map_with_nulls<'a, I, P>(rows: I, nulls: Option<NullBuffer>) -> MapArray
where
    I: IntoIterator<Item = P>,
    P: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut keys = StringBuilder::new();
    let mut values = StringBuilder::new();
    let mut offsets = vec![0i32];
    for row in rows {
        for (k, v) in row {
            keys.append_value(k);
            values.append_value(v);
        }
        offsets.push(keys.len() as i32);
    }
    map_from_parts(
        Arc::new(keys.finish()),
        Arc::new(values.finish()),
        offsets,
        nulls,
    )
}

/// Assembles a map column from flat key and value arrays plus row offsets.
pub fn map_from_parts(
    keys: ArrayRef,
    values: ArrayRef,
    offsets: Vec<i32>,
    nulls: Option<NullBuffer>,
) -> MapArray {
    let entries = StructArray::new(string_map_entry_fields(), vec![keys, values], None);
    let entries_field = Arc::new(Field::new(
        "entries",
        DataType::Struct(string_map_entry_fields()),
        false,
    ));
    MapArray::new(
        entries_field,
        OffsetBuffer::new(offsets.into()),
        entries,
        nulls,
        false,
    )
}

/// Reads row `row` of a `Map<Utf8, Utf8>` column as pairs (null values read
/// as empty strings, a null map as no pairs).
pub fn map_row(map: &MapArray, row: usize) -> Vec<(&str, &str)> {
    if map.is_null(row) {
        return Vec::new();
    }
    let start = map.value_offsets()[row] as usize;
    let end = map.value_offsets()[row + 1] as usize;
    let keys = map
        .keys()
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("map keys are Utf8");
    let values = map
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("map values are Utf8");
    (start..end)
        .map(|i| {
            let v = if values.is_null(i) {
                ""
            } else {
                values.value(i)
            };
            (keys.value(i), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_set_sorts_and_dedups() {
        let ls = LabelSet::from_pairs([("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(
            ls.pairs(),
            &[
                ("a".to_string(), "2".to_string()),
                ("b".to_string(), "3".to_string())
            ]
        );
        assert_eq!(ls.get("b"), Some("3"));
        assert_eq!(ls.get("c"), None);
    }

    #[test]
    fn series_id_is_stable_and_distinguishes_boundaries() {
        let a = series_id("up", &[("job", "api")]);
        assert_eq!(a, series_id("up", &[("job", "api")]));
        assert_ne!(a, series_id("up", &[("jo", "bapi")]));
        assert_ne!(a, series_id("upjob", &[("", "api")]));
        // Pinned so that a change of hash function is noticed: ids are persisted.
        assert_eq!(
            series_id("up", &[("instance", "a:1"), ("job", "api")]),
            -3437553013129919774
        );
    }

    #[test]
    fn map_round_trip() {
        let rows = [vec![("a", "1"), ("b", "2")], vec![], vec![("c", "3")]];
        let map = build_string_map(rows.iter().map(|r| r.iter().copied()));
        assert_eq!(map.len(), 3);
        assert_eq!(map_row(&map, 0), vec![("a", "1"), ("b", "2")]);
        assert!(map_row(&map, 1).is_empty());
        assert_eq!(map_row(&map, 2), vec![("c", "3")]);
    }
}

/// A map keyed by label sets (or references to them) a query groups or
/// joins by: foldhash, several times faster than SipHash on the label
/// strings, seeded per map.
pub type LabelsMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A map keyed by series id. Series ids are already xxh3 hashes of the
/// label set: hashing them again would be wasted work on every sample.
pub type SeriesIdMap<V> =
    std::collections::HashMap<i64, V, std::hash::BuildHasherDefault<SeriesIdHasher>>;

/// The identity hash of a series id (see [`SeriesIdMap`]).
#[derive(Default)]
pub struct SeriesIdHasher(u64);

impl std::hash::Hasher for SeriesIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = id as u64;
    }
}
