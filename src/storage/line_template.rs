//! Log line templates: each stored log line's text with its variables cut
//! out, kept beside the line in the block's `line_template` column (a
//! dictionary: a block of millions of lines has a few thousand templates),
//! and the block's distinct templates listed in its `.rows` sidecar. A line
//! filter is then decided once per template instead of once per line
//! (`catalog::line_filters`): a query for `|= "connection reset"` reads the
//! small template column, not the lines.
//!
//! A line is cut into tokens, maximal runs of bytes that are not
//! [`is_delimiter`]s. A token holding an ASCII digit is a variable (ids,
//! numbers, times, addresses); everything else is kept as it is. In the
//! template a variable becomes a placeholder byte saying its kind
//! ([`VariableKind`]: a number, a hex string, anything else); a static
//! placeholder or [`ESCAPE`] byte is written after an `ESCAPE`. So a
//! template stands for every line that has its static text with, at each
//! placeholder, a non-empty run of the bytes its kind allows — what a
//! filter over templates reasons about.
//!
//! The first [`STORED_VARIABLES`] variables of each line are stored too, by
//! position, in `line_var_0`, …: a filter whose answer on a template
//! depends on a variable (`|~ "status=50[23]"`) reads those few bytes per
//! line, not the line.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, StringDictionaryBuilder};
use arrow::datatypes::{DataType, Int32Type};

/// The storage column of log blocks holding each line's template.
pub const TEMPLATE_COLUMN: &str = "line_template";

/// How many of a line's variables, by position, log blocks store beside
/// its template ([`variable_column`]): a filter whose verdict on a
/// template depends on its first variables reads those, not the lines.
pub const STORED_VARIABLES: usize = 4;

/// The storage column of log blocks holding each templated line's variable
/// number `position` (from 0; null where the line has fewer).
pub fn variable_column(position: usize) -> String {
    format!("line_var_{position}")
}

/// Stands for one variable in a template (a number: see [`VariableKind`]).
pub const PLACEHOLDER: u8 = 0x11;

/// Escapes a static placeholder or `ESCAPE` byte in a template.
pub const ESCAPE: u8 = 0x12;

/// Stands for a hex variable in a template.
pub const HEX_PLACEHOLDER: u8 = 0x13;

/// Stands for any other variable in a template.
pub const OTHER_PLACEHOLDER: u8 = 0x14;

/// What bytes a variable is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariableKind {
    /// Digits, `.`, `+` and `-` (counts, durations, addresses, versions).
    Number,
    /// Hex digits (ids, hashes), not a number.
    Hex,
    /// Any non-delimiter bytes.
    Other,
}

impl VariableKind {
    /// The narrowest kind that allows every byte of `token` (a token, so
    /// `Other` allows them all): filters rely on a variable holding only
    /// bytes its kind [`allows`](Self::allows).
    fn of(token: &[u8]) -> VariableKind {
        [VariableKind::Number, VariableKind::Hex]
            .into_iter()
            .find(|kind| token.iter().all(|&b| kind.allows(b)))
            .unwrap_or(VariableKind::Other)
    }

    fn byte(self) -> u8 {
        match self {
            VariableKind::Number => PLACEHOLDER,
            VariableKind::Hex => HEX_PLACEHOLDER,
            VariableKind::Other => OTHER_PLACEHOLDER,
        }
    }

    /// The kind a template's placeholder byte stands for.
    fn of_placeholder(b: u8) -> Option<VariableKind> {
        match b {
            PLACEHOLDER => Some(VariableKind::Number),
            HEX_PLACEHOLDER => Some(VariableKind::Hex),
            OTHER_PLACEHOLDER => Some(VariableKind::Other),
            _ => None,
        }
    }

    /// Whether a variable of this kind can hold `b`.
    pub fn allows(self, b: u8) -> bool {
        match self {
            VariableKind::Number => b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-'),
            VariableKind::Hex => b.is_ascii_hexdigit(),
            VariableKind::Other => !is_delimiter(b),
        }
    }
}

/// Lines longer than this get no template (a null): they are rare, and
/// would make the block's template list long.
const MAX_TEMPLATED_LINE_BYTES: usize = 4096;

/// A batch's lines get no templates when their distinct templates would
/// take more than this share of the lines' bytes: its lines are not
/// repetitive text, and a template column would only add to the block.
const MAX_TEMPLATE_SHARE: f64 = 0.5;

/// Batches of fewer line bytes keep their templates whatever their share.
const MIN_BYTES_FOR_SHARE: usize = 64 << 10;

/// A block lists its templates in its sidecar only while they are at most
/// this many, of at most [`MAX_LISTED_TEMPLATE_BYTES`] in all.
const MAX_LISTED_TEMPLATES: usize = 65_536;
const MAX_LISTED_TEMPLATE_BYTES: usize = 8 << 20;

/// The data type of the template column: the Parquet dictionary is kept
/// when read, so a filter looks at each distinct template once per batch.
pub fn template_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Bytes that separate tokens: white space, quotes and the punctuation of
/// key-value, JSON and URL syntax. [`PLACEHOLDER`] and [`ESCAPE`] are
/// delimiters too, so a variable never holds them.
pub fn is_delimiter(b: u8) -> bool {
    DELIMITERS[b as usize]
}

/// [`is_delimiter`] as a table, looked up once per byte of every line flushed.
static DELIMITERS: [bool; 256] = {
    let list = b" \t\n\r\"'`=:,;{}[]()<>|&?/\\";
    let mut table = [false; 256];
    let mut i = 0;
    while i < list.len() {
        table[list[i] as usize] = true;
        i += 1;
    }
    table[PLACEHOLDER as usize] = true;
    table[ESCAPE as usize] = true;
    table[HEX_PLACEHOLDER as usize] = true;
    table[OTHER_PLACEHOLDER as usize] = true;
    table
};

/// Writes the template of `line` into `out` (cleared first); false (and
/// `out` meaningless) when the line is too long to get one.
pub fn template_of(line: &str, out: &mut Vec<u8>) -> bool {
    template_and_variables_of(line, out, &mut Vec::new())
}

/// [`template_of`], also listing where the line's variables are, in order
/// (`variables` cleared first).
pub fn template_and_variables_of(
    line: &str,
    out: &mut Vec<u8>,
    variables: &mut Vec<Range<usize>>,
) -> bool {
    out.clear();
    variables.clear();
    let bytes = line.as_bytes();
    if bytes.len() > MAX_TEMPLATED_LINE_BYTES {
        return false;
    }
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if is_delimiter(b) {
            if b == ESCAPE || VariableKind::of_placeholder(b).is_some() {
                out.push(ESCAPE);
            }
            out.push(b);
            at += 1;
            continue;
        }
        let end = bytes[at..]
            .iter()
            .position(|&b| is_delimiter(b))
            .map_or(bytes.len(), |n| at + n);
        let token = &bytes[at..end];
        if token.iter().any(u8::is_ascii_digit) {
            out.push(VariableKind::of(token).byte());
            variables.push(at..end);
        } else {
            out.extend_from_slice(token);
        }
        at = end;
    }
    true
}

/// One part of a template, as [`pieces`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text every line of the template has here.
    Static(Vec<u8>),
    /// A non-empty run of the bytes its kind allows.
    Variable(VariableKind),
}

/// A template's static runs and variables, in line order.
pub fn pieces(template: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = Vec::new();
    let mut bytes = template.as_bytes().iter().copied();
    while let Some(b) = bytes.next() {
        if let Some(kind) = VariableKind::of_placeholder(b) {
            if !text.is_empty() {
                out.push(Piece::Static(std::mem::take(&mut text)));
            }
            out.push(Piece::Variable(kind));
            continue;
        }
        match b {
            ESCAPE => text.extend(bytes.next()),
            _ => text.push(b),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Static(text));
    }
    out
}

/// A batch's template column and its [`STORED_VARIABLES`] variable columns.
pub struct TemplateColumns {
    pub templates: ArrayRef,
    pub variables: Vec<ArrayRef>,
}

/// The template and variable columns of a batch's `lines`: a template per
/// line and its first variables, or nulls throughout when the lines are not
/// repetitive enough (see [`MAX_TEMPLATE_SHARE`]).
pub fn template_columns(lines: &ArrayRef) -> TemplateColumns {
    let rows = lines.len();
    let none = || TemplateColumns {
        templates: arrow::array::new_null_array(&template_type(), rows),
        variables: (0..STORED_VARIABLES)
            .map(|_| arrow::array::new_null_array(&DataType::Utf8, rows))
            .collect(),
    };
    let lines = match lines.data_type() {
        DataType::Utf8 => lines.as_string::<i32>(),
        _ => return none(),
    };
    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
    let mut variable_builders: Vec<StringBuilder> = (0..STORED_VARIABLES)
        .map(|_| StringBuilder::new())
        .collect();
    let mut template = Vec::new();
    let mut variables = Vec::new();
    let mut distinct = 0usize;
    let mut distinct_bytes = 0usize;
    let mut line_bytes = 0usize;
    for line in lines.iter() {
        match line {
            Some(line) if template_and_variables_of(line, &mut template, &mut variables) => {
                line_bytes += line.len();
                // Placeholders and escapes are ASCII, so the template of a
                // string is a string.
                let text = std::str::from_utf8(&template).expect("templates of UTF-8 are UTF-8");
                match builder.append(text) {
                    Ok(key) if key as usize == distinct => {
                        distinct += 1;
                        distinct_bytes += text.len();
                    }
                    Ok(_) => {}
                    Err(_) => return none(),
                }
                for (k, out) in variable_builders.iter_mut().enumerate() {
                    // Tokens end at ASCII delimiters, so each is a string.
                    out.append_option(variables.get(k).map(|at| &line[at.clone()]));
                }
            }
            _ => {
                builder.append_null();
                variable_builders
                    .iter_mut()
                    .for_each(StringBuilder::append_null);
            }
        }
    }
    if line_bytes > MIN_BYTES_FOR_SHARE
        && distinct_bytes as f64 > MAX_TEMPLATE_SHARE * line_bytes as f64
    {
        return none();
    }
    TemplateColumns {
        templates: Arc::new(builder.finish()),
        variables: variable_builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect(),
    }
}

/// A block's distinct templates, gathered from its stored batches; a list
/// only when every line has a template and they are few enough.
#[derive(Debug, Default)]
pub struct TemplateListBuilder {
    seen: HashSet<String>,
    bytes: usize,
    /// Some line has no template, or there are too many to list.
    incomplete: bool,
    started: bool,
}

impl TemplateListBuilder {
    pub fn new() -> Self {
        TemplateListBuilder::default()
    }

    /// Adds a stored batch's template column (None: the batch has none).
    pub fn add(&mut self, column: Option<&ArrayRef>) {
        self.started = true;
        if self.incomplete {
            return;
        }
        let Some(column) = column else {
            self.incomplete = true;
            return;
        };
        let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() else {
            self.incomplete = true;
            return;
        };
        if dictionary.null_count() > 0 {
            self.incomplete = true;
            return;
        }
        let values = dictionary.values().as_string::<i32>();
        // Only the values the keys use (a sliced batch keeps its dictionary).
        let mut used = vec![false; values.len()];
        for k in dictionary.keys().values() {
            used[*k as usize] = true;
        }
        for (i, value) in values.iter().enumerate() {
            if !used[i] {
                continue;
            }
            let Some(value) = value else { continue };
            if !self.seen.contains(value) {
                self.bytes += value.len();
                self.seen.insert(value.to_string());
            }
        }
        if self.seen.len() > MAX_LISTED_TEMPLATES || self.bytes > MAX_LISTED_TEMPLATE_BYTES {
            self.incomplete = true;
            self.seen.clear();
        }
    }

    /// The block's templates, sorted; None when some line has none or they
    /// are too many to list.
    pub fn finish(self) -> Option<Vec<String>> {
        (!self.incomplete && self.started).then(|| {
            let mut list: Vec<String> = self.seen.into_iter().collect();
            list.sort_unstable();
            list
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::StringArray;

    /// The template of `line`, which must get one.
    pub(crate) fn template(line: &str) -> String {
        let mut out = Vec::new();
        assert!(template_of(line, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn variables_are_tokens_with_digits() {
        assert_eq!(
            template(
                r#"level=info msg="cache miss" status=200 latency_ms=12.5 user=u42 path=/api/v2/users"#
            ),
            "level=info msg=\"cache miss\" status=\u{11} latency_ms=\u{11} user=\u{14} path=/api/\u{14}/users"
        );
        assert_eq!(
            template(r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","ok":true}"#),
            "{\"trace_id\":\"\u{13}\",\"ok\":true}"
        );
        assert_eq!(template(""), "");
        assert_eq!(template("héllo wörld 3ème"), "héllo wörld \u{14}");
        assert_eq!(
            template("10.0.0.1 -3 ff00 0x1f"),
            "\u{11} \u{11} \u{13} \u{14}"
        );
    }

    #[test]
    fn static_placeholder_bytes_are_escaped_and_read_back() {
        let line = "a\u{11}b \u{12} 7";
        let t = template(line);
        assert_eq!(t, "a\u{12}\u{11}b \u{12}\u{12} \u{11}");
        assert_eq!(
            pieces(&t),
            vec![
                Piece::Static(b"a\x11b \x12 ".to_vec()),
                Piece::Variable(VariableKind::Number)
            ]
        );
        assert_eq!(
            pieces("\u{13}x\u{14}"),
            vec![
                Piece::Variable(VariableKind::Hex),
                Piece::Static(b"x".to_vec()),
                Piece::Variable(VariableKind::Other)
            ]
        );
    }

    #[test]
    fn columns_and_lists() {
        let lines: ArrayRef = Arc::new(StringArray::from(vec![
            Some("took 12 ms"),
            Some("took 7 ms"),
            Some("done"),
        ]));
        let columns = template_columns(&lines);
        let column = columns.templates;
        let dictionary = column.as_dictionary::<Int32Type>();
        assert_eq!(dictionary.values().len(), 2);
        assert_eq!(columns.variables.len(), STORED_VARIABLES);
        assert_eq!(
            columns.variables[0]
                .as_string::<i32>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some("12"), Some("7"), None]
        );
        assert_eq!(columns.variables[1].null_count(), 3);
        // The first variables by position, however many the line has.
        let many: ArrayRef = Arc::new(StringArray::from(vec!["a=1 b=0x2f c=u3 d=4.5 e=5"]));
        let columns = template_columns(&many);
        let stored: Vec<_> = columns
            .variables
            .iter()
            .map(|c| c.as_string::<i32>().value(0).to_string())
            .collect();
        assert_eq!(stored, ["1", "0x2f", "u3", "4.5"]);
        let mut list = TemplateListBuilder::new();
        list.add(Some(&column));
        assert_eq!(
            list.finish(),
            Some(vec!["done".to_string(), "took \u{11} ms".to_string()])
        );

        // Many lines that share nothing get no templates, and the block no list.
        let unique: ArrayRef = Arc::new(StringArray::from(
            (0..10_000)
                .map(|i| {
                    format!("word{}", "x".repeat(i % 97)).replace('1', "y") + &"z".repeat(i / 97)
                })
                .map(|l| l.replace(char::is_numeric, "w"))
                .collect::<Vec<_>>(),
        ));
        let columns = template_columns(&unique);
        let column = columns.templates;
        assert_eq!(column.null_count(), 10_000);
        assert_eq!(columns.variables[0].null_count(), 10_000);
        let mut list = TemplateListBuilder::new();
        list.add(Some(&column));
        assert_eq!(list.finish(), None);

        // A too-long line has none either.
        let long: ArrayRef = Arc::new(StringArray::from(vec!["x ".repeat(3000)]));
        assert_eq!(template_columns(&long).templates.null_count(), 1);
        assert_eq!(TemplateListBuilder::new().finish(), None);
    }
}
