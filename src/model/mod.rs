//! The canonical Arrow schemas of the three signals o11ydb stores — `logs`,
//! `samples` and `spans` — and the helpers every other module uses to name
//! them. Record batches flow from the ingest decoders into these shapes,
//! through the WAL and head, into Parquet blocks and back out of the table
//! providers unchanged.
//!
//! The exact column list is documented for users in `docs/schema.md`.

pub mod builders;
pub mod histogram;
pub mod labels;
pub mod normalize;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The three kinds of telemetry, one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Logs,
    Samples,
    Spans,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Samples, Signal::Spans];

    /// The SQL table name of the signal.
    pub fn table_name(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Samples => "samples",
            Signal::Spans => "spans",
        }
    }

    /// The Arrow schema every batch of this signal has.
    pub fn schema(self) -> SchemaRef {
        match self {
            Signal::Logs => LOGS_SCHEMA.clone(),
            Signal::Samples => SAMPLES_SCHEMA.clone(),
            Signal::Spans => SPANS_SCHEMA.clone(),
        }
    }

    /// The schema with every column nullable: what SQL `INSERT` and
    /// protocol decoders may produce before [`normalize::normalize`] checks it.
    pub fn relaxed_schema(self) -> SchemaRef {
        let schema = self.schema();
        Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ))
    }

    /// The column holding the signal's event time, used for time pruning.
    pub fn time_column(self) -> &'static str {
        match self {
            Signal::Logs | Signal::Samples => "timestamp",
            Signal::Spans => "start_time",
        }
    }

    /// Stable one-byte code used in the WAL.
    pub fn code(self) -> u8 {
        match self {
            Signal::Logs => 1,
            Signal::Samples => 2,
            Signal::Spans => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Signal> {
        match code {
            1 => Some(Signal::Logs),
            2 => Some(Signal::Samples),
            3 => Some(Signal::Spans),
            _ => None,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table_name())
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logs" => Ok(Signal::Logs),
            "samples" => Ok(Signal::Samples),
            "spans" => Ok(Signal::Spans),
            other => Err(format!("unknown signal {other:?}")),
        }
    }
}

/// `Map<Utf8, Utf8>` exactly as DataFusion's `map()`/`MAP {}` builds it, so
/// `INSERT ... VALUES (MAP {'job': 'api'})` needs no cast.
pub fn string_map_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(string_map_entry_fields()),
            false,
        )),
        false,
    )
}

pub fn string_map_entry_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ])
}

/// Nanosecond UTC timestamps (logs, spans).
pub fn timestamp_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Millisecond UTC timestamps (samples, as Prometheus keeps them).
pub fn timestamp_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

pub static LOGS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_ns(), false),
        Field::new("labels", string_map_type(), false),
        Field::new("line", DataType::Utf8, false),
        Field::new("structured_metadata", string_map_type(), false),
        Field::new("severity", DataType::Utf8, true),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("stream_id", DataType::Int64, false),
    ]))
});

pub static SAMPLES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_ms(), false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("labels", string_map_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("series_id", DataType::Int64, false),
        // A native histogram sample (`histogram::FloatHistogram::encode`);
        // null for float samples. Its row's `value` is NaN.
        Field::new("histogram", DataType::Binary, true),
    ]))
});

pub fn span_event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_ns(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", string_map_type(), false),
    ])
}

pub fn span_link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, true),
        Field::new("attributes", string_map_type(), false),
    ])
}

pub static SPANS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let item = |fields: Fields| {
        DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
    };
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("trace_state", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, false),
        Field::new("start_time", timestamp_ns(), false),
        Field::new("end_time", timestamp_ns(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Utf8, false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new("attributes", string_map_type(), false),
        Field::new("resource_attributes", string_map_type(), false),
        Field::new("scope_name", DataType::Utf8, true),
        Field::new("scope_version", DataType::Utf8, true),
        Field::new("events", item(span_event_fields()), true),
        Field::new("links", item(span_link_fields()), true),
    ]))
});

/// OpenTelemetry span kinds as stored in `spans.kind`.
pub const SPAN_KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

/// OpenTelemetry status codes as stored in `spans.status_code`.
/// Bits of Prometheus' stale marker, the special NaN a sample carries when
/// its series disappeared; stored and returned bit for bit.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub const SPAN_STATUS_CODES: [&str; 3] = ["unset", "ok", "error"];

/// A tenant id, validated at the edge (see [`crate::ingest::validate_tenant`]).
pub type TenantId = String;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_codes_round_trip() {
        for s in Signal::ALL {
            assert_eq!(Signal::from_code(s.code()), Some(s));
            assert_eq!(s.table_name().parse::<Signal>().unwrap(), s);
        }
        assert_eq!(Signal::from_code(9), None);
    }

    #[test]
    fn time_columns_exist() {
        for s in Signal::ALL {
            assert!(s.schema().field_with_name(s.time_column()).is_ok());
        }
    }
}
