//! Filters on map entries (`labels['job'] = 'api'`,
//! `attributes['http.status_code'] IN (...)`) for the Parquet reader of
//! blocks, where map columns are packed label sets
//! (`storage::codec`): [`rewrite`] turns each `get_field(map, 'key')` into
//! [`PackedGet`] over the packed column, which looks a key up once per
//! distinct label set of a batch (not once per row, and without building
//! maps). The reader then drops failing rows before it decodes the other
//! columns. The provider re-checks every filter above the scan, as for any
//! pushed-down filter.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

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
}
