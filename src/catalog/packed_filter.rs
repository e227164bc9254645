//! Filters on map entries (`labels['job'] = 'api'`,
//! `attributes['http.status_code'] IN (...)`) for the Parquet reader of
//! blocks, where map columns are packed label sets
//! (`storage::codec`): [`rewrite`] turns each `get_field(map, 'key')` into
//! [`PackedGet`] over the packed column, which looks a key up once per
//! distinct label set of a batch (not once per row, and without building
//! maps). The reader then drops failing rows before it decodes the other
//! columns. The provider re-checks every filter above the scan, as for any
//! pushed-down filter.
//!
//! A filter that reads one packed column and nothing else (`labels['env']
//! = 'prod'`, `regexp_like(labels['pod'], …)`) is wrapped in
//! [`PerLabelSet`]: it is evaluated once per distinct label set of the
//! column's dictionary and the answers are spread over the rows by their
//! dictionary keys, so no per-row value is built or compared.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, exec_err, internal_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;

use crate::storage::codec::{PackedColumn, PackedPairs};

/// `packed_get(packed_label_sets, 'key')`: the key's value per row, NULL
/// where the label set has no such key (as `get_field` on the map).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PackedGet {
    signature: Signature,
}

static PACKED_GET: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::new_from_impl(PackedGet {
        signature: Signature::any(2, Volatility::Immutable),
    }))
});

impl ScalarUDFImpl for PackedGet {
    fn name(&self) -> &str {
        "packed_get"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(key))) = &args.args[1] else {
            return exec_err!("packed_get() takes a text key literal");
        };
        let column = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(lookup(&column, key)?))
    }
}

/// The value of `key` in one packed label set.
fn find<'a>(set: &'a [u8], key: &str) -> Result<Option<&'a str>> {
    for pair in PackedPairs::new(set) {
        let (k, v) = pair.map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
        if k == key {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The value of `key` in each packed label set of `column`.
fn lookup(column: &ArrayRef, key: &str) -> Result<ArrayRef> {
    let packed = PackedColumn::of(column)?;
    // Label sets that repeat (series, streams, resources): each distinct
    // one once. A dictionary larger than the batch (one of a whole row
    // group, mostly distinct sets), or none: only the rows'.
    if let PackedColumn::Dictionary { keys, sets, .. } = &packed
        && sets.len() <= keys.len()
    {
        let per_set = (0..sets.len())
            .map(|i| match sets.is_valid(i) {
                true => find(sets.value(i), key),
                false => Ok(None),
            })
            .collect::<Result<StringArray>>()?;
        return Ok(arrow::compute::take(&per_set, *keys, None)?);
    }
    let per_row = (0..column.len())
        .map(|row| match packed.set(row) {
            Some((_, set)) => find(set, key),
            None => Ok(None),
        })
        .collect::<Result<StringArray>>()?;
    Ok(Arc::new(per_row))
}

/// `filter` with every `get_field(c, 'key')` of a packed map column `c`
/// read from the packed label sets, or `None` when it uses such a column
/// any other way (that cannot run on the packed form).
pub fn rewrite(filter: Expr, packed: &HashSet<&str>) -> Option<Expr> {
    let rewritten = filter
        .transform_up(|e| {
            if let Expr::ScalarFunction(f) = &e
                && f.func.name() == "get_field"
                && let [
                    Expr::Column(c),
                    key @ Expr::Literal(ScalarValue::Utf8(Some(_)), _),
                ] = f.args.as_slice()
                && packed.contains(c.name.as_str())
            {
                let call = ScalarFunction::new_udf(
                    PACKED_GET.clone(),
                    vec![Expr::Column(c.clone()), key.clone()],
                );
                return Ok(Transformed::yes(Expr::ScalarFunction(call)));
            }
            Ok(Transformed::no(e))
        })
        .ok()?
        .data;
    // Any packed column left outside packed_get() stops the push-down.
    let mut stray = false;
    rewritten
        .apply(|e| {
            Ok(match e {
                Expr::ScalarFunction(f) if f.func.name() == "packed_get" => TreeNodeRecursion::Jump,
                Expr::Column(c) if packed.contains(c.name.as_str()) => {
                    stray = true;
                    TreeNodeRecursion::Stop
                }
                _ => TreeNodeRecursion::Continue,
            })
        })
        .ok()?;
    (!stray).then_some(rewritten)
}

/// A filter conjunct over one packed label column, evaluated per distinct
/// label set when the column arrives dictionary-encoded (as the Parquet
/// reader gives it) with no more sets than rows, and row by row otherwise.
/// Only for a whole conjunct: a set's NULL answer becomes false.
#[derive(Debug)]
pub struct PerLabelSet {
    /// The filter over the batch.
    filter: Arc<dyn PhysicalExpr>,
    /// The same filter over a one-column batch of label sets.
    on_sets: Arc<dyn PhysicalExpr>,
    /// The packed column in the batch.
    column: Column,
}

impl PerLabelSet {
    /// `filter` wrapped when it reads exactly one column; else unchanged.
    pub fn wrap(filter: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(match PerLabelSet::try_new(filter.clone())? {
            Some(wrapped) => Arc::new(wrapped),
            None => filter,
        })
    }

    /// `filter` wrapped, when it reads exactly one column.
    pub fn try_new(filter: Arc<dyn PhysicalExpr>) -> Result<Option<PerLabelSet>> {
        let columns = collect_columns(&filter);
        let mut only = columns.iter();
        let (Some(column), None) = (only.next(), only.next()) else {
            return Ok(None);
        };
        let column = column.clone();
        let on_sets = filter
            .clone()
            .transform(|e| match e.downcast_ref::<Column>() {
                Some(c) => Ok(Transformed::yes(
                    Arc::new(Column::new(c.name(), 0)) as Arc<dyn PhysicalExpr>
                )),
                None => Ok(Transformed::no(e)),
            })?
            .data;
        Ok(Some(PerLabelSet {
            filter,
            on_sets,
            column,
        }))
    }

    /// The packed column the filter reads.
    pub fn column(&self) -> &str {
        self.column.name()
    }

    /// Whether any of `sets` (packed label sets, as `Binary`) passes.
    pub fn any_set_passes(&self, sets: &ArrayRef) -> Result<bool> {
        use datafusion::logical_expr::ColumnarValue;
        Ok(match self.evaluate_on_sets(sets)? {
            ColumnarValue::Array(per_set) => match per_set.as_boolean_opt() {
                Some(per_set) => per_set.true_count() > 0,
                None => true,
            },
            ColumnarValue::Scalar(ScalarValue::Boolean(passes)) => {
                passes == Some(true) && !sets.is_empty()
            }
            ColumnarValue::Scalar(_) => true,
        })
    }

    /// The filter's answer for each of `sets` (packed label sets).
    fn evaluate_on_sets(&self, sets: &ArrayRef) -> Result<datafusion::logical_expr::ColumnarValue> {
        let field = Field::new(self.column.name(), sets.data_type().clone(), true);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![sets.clone()])?;
        self.on_sets.evaluate(&batch)
    }
}

/// Whether each row passes, from whether its label set does (`keys` index
/// `per_set`, none null). A NULL answer counts as failing: the wrapped
/// expression is a whole filter conjunct, where NULL and false both drop
/// the row. All passing or all failing is one scalar.
fn rows_passing(
    per_set: &arrow::array::BooleanArray,
    keys: &arrow::array::Int32Array,
) -> datafusion::logical_expr::ColumnarValue {
    use datafusion::logical_expr::ColumnarValue;
    let passes: Vec<bool> = (0..per_set.len())
        .map(|i| per_set.is_valid(i) && per_set.value(i))
        .collect();
    if passes.iter().all(|&p| p) || passes.iter().all(|&p| !p) {
        let all = passes.first().copied().unwrap_or(false);
        return ColumnarValue::Scalar(ScalarValue::Boolean(Some(all)));
    }
    let keys = keys.values();
    let rows = arrow::buffer::BooleanBuffer::collect_bool(keys.len(), |row| {
        passes.get(keys[row] as usize).copied().unwrap_or(false)
    });
    ColumnarValue::Array(Arc::new(arrow::array::BooleanArray::new(rows, None)))
}

impl PartialEq for PerLabelSet {
    fn eq(&self, other: &Self) -> bool {
        *self.filter == *other.filter
    }
}

impl Eq for PerLabelSet {}

impl Hash for PerLabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.filter.hash(state);
    }
}

impl fmt::Display for PerLabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "per_label_set({})", self.filter)
    }
}

impl PhysicalExpr for PerLabelSet {
    fn return_field(&self, input_schema: &Schema) -> Result<arrow::datatypes::FieldRef> {
        self.filter.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::logical_expr::ColumnarValue;
        let column = batch.column(self.column.index());
        if let Some(dictionary) = column.as_dictionary_opt::<arrow::datatypes::Int32Type>()
            && dictionary.values().len() <= dictionary.len()
        {
            return Ok(match self.evaluate_on_sets(dictionary.values())? {
                ColumnarValue::Array(per_set) => match per_set.as_boolean_opt() {
                    Some(per_set) if dictionary.keys().null_count() == 0 => {
                        rows_passing(per_set, dictionary.keys())
                    }
                    _ => ColumnarValue::Array(arrow::compute::take(
                        &per_set,
                        dictionary.keys(),
                        None,
                    )?),
                },
                scalar => scalar,
            });
        }
        self.filter.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.filter]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match <[_; 1]>::try_from(children) {
            Ok([filter]) => PerLabelSet::wrap(filter),
            Err(children) => internal_err!("per_label_set() has one child, not {}", children.len()),
        }
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.filter.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::{pack_pairs, packed_map_type};
    use arrow::array::{AsArray, BinaryBuilder};
    use datafusion::functions::core::expr_fn::get_field;
    use datafusion::logical_expr::{col, lit};

    fn packed(rows: &[&[(&str, &str)]]) -> ArrayRef {
        let mut b = BinaryBuilder::new();
        let mut buf = Vec::new();
        for r in rows {
            buf.clear();
            pack_pairs(r, &mut buf);
            b.append_value(&buf);
        }
        arrow::compute::cast(&b.finish(), &packed_map_type()).unwrap()
    }

    #[test]
    fn looks_keys_up_per_label_set() {
        let column = packed(&[
            &[("code", "500"), ("job", "api")],
            &[("job", "db")],
            &[("code", "500"), ("job", "api")],
            &[],
        ]);
        let got = lookup(&column, "code").unwrap();
        let got: Vec<Option<&str>> = got.as_string::<i32>().iter().collect();
        assert_eq!(got, vec![Some("500"), None, Some("500"), None]);
        // A slice: fewer rows than the dictionary has sets.
        let got = lookup(&column.slice(1, 2), "code").unwrap();
        let got: Vec<Option<&str>> = got.as_string::<i32>().iter().collect();
        assert_eq!(got, vec![None, Some("500")]);
        let plain = arrow::compute::cast(&column, &DataType::Binary).unwrap();
        let got = lookup(&plain, "job").unwrap();
        let got: Vec<Option<&str>> = got.as_string::<i32>().iter().collect();
        assert_eq!(got, vec![Some("api"), Some("db"), Some("api"), None]);
    }

    #[test]
    fn rewrites_entry_lookups_and_refuses_other_uses() {
        let packed: HashSet<&str> = ["labels"].into();
        let entry = get_field(col("labels"), "job").eq(lit("api"));
        let rewritten = rewrite(entry, &packed).unwrap();
        assert_eq!(
            rewritten.to_string(),
            "packed_get(labels, Utf8(\"job\")) = Utf8(\"api\")"
        );
        let in_list = get_field(col("labels"), "job")
            .in_list(vec![lit("a"), lit("b")], false)
            .and(col("metric").eq(lit("up")));
        assert!(rewrite(in_list, &packed).is_some());
        // The whole map: not on the packed form.
        assert!(rewrite(col("labels").is_not_null(), &packed).is_none());
        // Other columns pass through unchanged.
        let plain = col("metric").eq(lit("up"));
        assert_eq!(rewrite(plain.clone(), &packed), Some(plain));
    }

    #[test]
    fn filters_once_per_label_set_like_row_by_row() {
        use datafusion::logical_expr::ColumnarValue;
        use datafusion::prelude::SessionContext;
        let column = packed(&[
            &[("code", "500"), ("job", "api")],
            &[("job", "db")],
            &[("code", "404"), ("job", "api")],
            &[("code", "500"), ("job", "api")],
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("other", DataType::Int32, false),
            Field::new("labels", column.data_type().clone(), false),
        ]));
        let batch = |labels: ArrayRef| {
            let other = Arc::new(arrow::array::Int32Array::from(vec![0; labels.len()]));
            let schema = Schema::new(vec![
                Field::new("other", DataType::Int32, false),
                Field::new("labels", labels.data_type().clone(), false),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![other, labels]).unwrap()
        };
        let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone()).unwrap();
        let ctx = SessionContext::new();
        let physical = |e: Expr| ctx.create_physical_expr(e, &df_schema).unwrap();
        let packed_set: HashSet<&str> = ["labels"].into();
        let rows = |value: ColumnarValue, n: usize| -> Vec<bool> {
            let a = value.into_array(n).unwrap();
            let a = a.as_boolean();
            (0..n).map(|i| a.is_valid(i) && a.value(i)).collect()
        };
        let filters = [
            get_field(col("labels"), "code").eq(lit("500")),
            get_field(col("labels"), "code").not_eq(lit("500")),
            // NULL for the set without `code`: fails, as in a filter.
            get_field(col("labels"), "code").is_not_null(),
            get_field(col("labels"), "job").eq(lit("api")),
            get_field(col("labels"), "job").eq(lit("none")),
        ];
        for filter in filters {
            let filter = physical(rewrite(filter, &packed_set).unwrap());
            let wrapped = PerLabelSet::wrap(filter.clone()).unwrap();
            assert!(wrapped.to_string().starts_with("per_label_set("));
            for labels in [
                column.clone(),
                column.slice(1, 3),
                arrow::compute::cast(&column, &DataType::Binary).unwrap(),
            ] {
                let n = labels.len();
                let b = batch(labels);
                assert_eq!(
                    rows(wrapped.evaluate(&b).unwrap(), n),
                    rows(filter.evaluate(&b).unwrap(), n),
                    "{filter}"
                );
            }
        }
        // A filter over two columns is left as it is.
        let two = physical(
            rewrite(get_field(col("labels"), "code").eq(lit("500")), &packed_set)
                .unwrap()
                .and(col("other").eq(lit(0))),
        );
        assert_eq!(
            PerLabelSet::wrap(two.clone()).unwrap().to_string(),
            two.to_string()
        );
    }
}
