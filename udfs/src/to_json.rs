//! `to_json(value) -> text`: renders any Arrow value as JSON. Maps with
//! string keys become objects (`{"job":"api"}`), lists arrays, structs
//! objects, timestamps RFC 3339 strings; SQL NULL stays NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field};
use arrow::json::writer::{EncoderOptions, make_encoder};
use datafusion::common::{Result, exec_datafusion_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToJson {
    signature: Signature,
}

impl Default for ToJson {
    fn default() -> Self {
        ToJson {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

pub fn to_json_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ToJson::default())
}

/// Encodes every row of `array` as JSON text.
pub fn array_to_json(array: &ArrayRef) -> Result<ArrayRef> {
    let field = Arc::new(Field::new("v", array.data_type().clone(), true));
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut encoder = make_encoder(&field, array.as_ref(), &options)
        .map_err(|e| exec_datafusion_err!("to_json: cannot encode {}: {e}", array.data_type()))?;
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 32);
    let mut buf = Vec::with_capacity(256);
    for i in 0..array.len() {
        if array.is_null(i) {
            out.append_null();
            continue;
        }
        buf.clear();
        encoder.encode(i, &mut buf);
        let text = std::str::from_utf8(&buf)
            .map_err(|e| exec_datafusion_err!("to_json produced invalid UTF-8: {e}"))?;
        out.append_value(text);
    }
    Ok(Arc::new(out.finish()))
}

impl ScalarUDFImpl for ToJson {
    fn name(&self) -> &str {
        "to_json"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(array_to_json(&array)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, MapBuilder, StringBuilder as SB};

    #[test]
    fn maps_become_objects_and_nulls_stay_null() {
        let mut b = MapBuilder::new(None, SB::new(), SB::new());
        b.keys().append_value("job");
        b.values().append_value("api");
        b.append(true).unwrap();
        b.append(false).unwrap();
        let map: ArrayRef = Arc::new(b.finish());
        let out = array_to_json(&map).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), r#"{"job":"api"}"#);
        assert!(out.is_null(1));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None]));
        let out = array_to_json(&ints).unwrap();
        assert_eq!(out.as_string::<i32>().value(0), "3");
    }
}
