//! SQL functions over the `histogram` column of `samples` (and of
//! `promql()` rows): encoded native histograms in, floats or text out —
//! `histogram_count(h)`, `histogram_sum(h)`, `histogram_avg(h)`,
//! `histogram_stddev(h)`, `histogram_stdvar(h)`, `histogram_quantile(q, h)`,
//! `histogram_fraction(lower, upper, h)` with PromQL's semantics, and
//! `histogram_text(h)`, Prometheus' text form. NULL in, NULL out; bytes
//! that are not an encoded histogram are an execution error naming the row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Builder, StringBuilder};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::model::histogram::{
    FloatHistogram, histogram_fraction, histogram_quantile, histogram_stddev, histogram_stdvar,
};

/// What one function computes from its float arguments and a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Count,
    Sum,
    Avg,
    Stddev,
    Stdvar,
    Quantile,
    Fraction,
    Text,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Count,
        Kind::Sum,
        Kind::Avg,
        Kind::Stddev,
        Kind::Stdvar,
        Kind::Quantile,
        Kind::Fraction,
        Kind::Text,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Count => "histogram_count",
            Kind::Sum => "histogram_sum",
            Kind::Avg => "histogram_avg",
            Kind::Stddev => "histogram_stddev",
            Kind::Stdvar => "histogram_stdvar",
            Kind::Quantile => "histogram_quantile",
            Kind::Fraction => "histogram_fraction",
            Kind::Text => "histogram_text",
        }
    }

    /// Float arguments before the histogram.
    fn floats(self) -> usize {
        match self {
            Kind::Quantile => 1,
            Kind::Fraction => 2,
            _ => 0,
        }
    }

    fn value(self, floats: &[f64], h: &FloatHistogram) -> f64 {
        match self {
            Kind::Count => h.count,
            Kind::Sum => h.sum,
            Kind::Avg => h.sum / h.count,
            Kind::Stddev => histogram_stddev(h),
            Kind::Stdvar => histogram_stdvar(h),
            Kind::Quantile => histogram_quantile(floats[0], h),
            Kind::Fraction => histogram_fraction(floats[0], floats[1], h),
            Kind::Text => f64::NAN,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HistogramFunction {
    kind: Kind,
    signature: Signature,
}

impl HistogramFunction {
    fn new(kind: Kind) -> Self {
        let mut types = vec![DataType::Float64; kind.floats()];
        types.push(DataType::Binary);
        HistogramFunction {
            kind,
            signature: Signature::exact(types, Volatility::Immutable),
        }
    }
}

/// Registers every histogram function in `ctx`.
pub fn register(ctx: &SessionContext) {
    for kind in Kind::ALL {
        ctx.register_udf(ScalarUDF::new_from_impl(HistogramFunction::new(kind)));
    }
}

impl ScalarUDFImpl for HistogramFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Text => DataType::Utf8,
            _ => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let (floats, histogram) = arrays.split_at(self.kind.floats());
        let floats: Vec<_> = floats
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let histograms: &BinaryArray = histogram[0].as_binary();
        let name = self.kind.name();
        let mut values = Float64Builder::with_capacity(rows);
        let mut texts = StringBuilder::new();
        let mut params = vec![0.0; floats.len()];
        for row in 0..rows {
            let null = histograms.is_null(row) || floats.iter().any(|f| f.is_null(row));
            if null {
                values.append_null();
                texts.append_null();
                continue;
            }
            let h = match FloatHistogram::decode(histograms.value(row)) {
                Ok(h) => h,
                Err(e) => return exec_err!("{name}: row {row} is not a native histogram: {e}"),
            };
            if self.kind == Kind::Text {
                texts.append_value(h.to_prom_string());
                continue;
            }
            for (p, f) in params.iter_mut().zip(&floats) {
                *p = f.value(row);
            }
            values.append_value(self.kind.value(&params, &h));
        }
        let out: ArrayRef = match self.kind {
            Kind::Text => Arc::new(texts.finish()),
            _ => Arc::new(values.finish()),
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, RecordBatch};
    use arrow::datatypes::{Field, Schema};

    use crate::model::histogram::Span;

    #[tokio::test]
    async fn sql_reads_encoded_histograms_like_promql() {
        let h = FloatHistogram {
            schema: 0,
            count: 4.0,
            sum: 10.0,
            positive_spans: vec![Span {
                offset: 1,
                length: 2,
            }],
            positive_buckets: vec![1.0, 3.0],
            ..Default::default()
        };
        let mut encoded = Vec::new();
        h.encode(&mut encoded);
        let schema = Arc::new(Schema::new(vec![
            Field::new("histogram", DataType::Binary, true),
            Field::new("q", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(BinaryArray::from(vec![Some(&encoded[..]), None])),
                Arc::new(Float64Array::from(vec![0.5, 0.5])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        register(&ctx);
        ctx.register_batch("t", batch).unwrap();
        let rows = ctx
            .sql(
                "SELECT histogram_count(histogram), histogram_avg(histogram), \
                 histogram_quantile(q, histogram), histogram_fraction(0, 2, histogram), \
                 histogram_text(histogram) FROM t",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &rows[0];
        let f = |c: usize| b.column(c).as_primitive::<Float64Type>().clone();
        assert_eq!(f(0).value(0), 4.0);
        assert_eq!(f(1).value(0), 2.5);
        assert_eq!(f(2).value(0), histogram_quantile(0.5, &h));
        assert_eq!(f(3).value(0), histogram_fraction(0.0, 2.0, &h));
        assert_eq!(b.column(4).as_string::<i32>().value(0), h.to_prom_string());
        assert!((0..5).all(|c| b.column(c).is_null(1)));

        let bad = ctx
            .sql("SELECT histogram_count(X'00ff')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("histogram_count: row 0 is not a native histogram"),
            "{bad}"
        );
    }
}
