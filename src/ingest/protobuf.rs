//! A minimal zero-copy protobuf reader for the hot ingest messages (remote
//! write, Loki push): fields are visited in order and strings are borrowed
//! from the request body instead of allocated. Only the wire types protobuf
//! encoders emit (varint, 64-bit, length-delimited, 32-bit) are accepted;
//! anything else is a decode error with the byte offset. Two small writers
//! serve the request encoders of tests and the load generator.

use super::validate::DecodeError;

/// A field's payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates the fields of one message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` within the whole request, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    fn error(&self, what: &str) -> DecodeError {
        DecodeError::bad_request(format!(
            "malformed protobuf at byte {}: {what}",
            self.base + self.pos
        ))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.error("field runs past the end of the message"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field number and value, or `None` at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(self.error("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = self.varint()? as usize;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            other => return Err(self.error(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((field, value)))
    }

    /// The next varint of a packed repeated field, or `None` at the end.
    pub fn next_varint(&mut self) -> Result<Option<u64>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        self.varint().map(Some)
    }

    /// A reader over a nested message's bytes (offsets stay request-relative).
    pub fn nested(&self, bytes: &'a [u8]) -> Reader<'a> {
        let base = self.base + (bytes.as_ptr() as usize).saturating_sub(self.buf.as_ptr() as usize);
        Reader {
            buf: bytes,
            pos: 0,
            base,
        }
    }
}

/// A length-delimited field as UTF-8 text.
pub fn as_str<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("{what} is not valid UTF-8: {e}"))
}

/// Protobuf `int64` (two's complement in a varint).
pub fn as_i64(v: u64) -> i64 {
    v as i64
}

/// Appends a varint (the encoders of the test and benchmark helpers).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field.
pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, ((field << 3) | 2) as u64);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type_and_reports_truncation() {
        // field 1 varint 150, field 2 bytes "hi", field 3 fixed64 1.5, field 4 fixed32 7
        let mut msg = vec![0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x19];
        msg.extend_from_slice(&1.5f64.to_le_bytes());
        msg.push(0x25);
        msg.extend_from_slice(&7u32.to_le_bytes());
        let mut r = Reader::new(&msg);
        assert_eq!(r.next_field().unwrap(), Some((1, Value::Varint(150))));
        assert_eq!(r.next_field().unwrap(), Some((2, Value::Bytes(b"hi"))));
        assert_eq!(
            r.next_field().unwrap(),
            Some((3, Value::Fixed64(1.5f64.to_bits())))
        );
        assert_eq!(r.next_field().unwrap(), Some((4, Value::Fixed32(7))));
        assert_eq!(r.next_field().unwrap(), None);
        let e = Reader::new(&[0x12, 0x05, b'a']).next_field().unwrap_err();
        assert!(
            e.message.contains("past the end") && e.message.contains("byte 2"),
            "{e}"
        );
        assert!(
            Reader::new(&[0x0b]).next_field().is_err(),
            "wire type 3 (groups) is refused"
        );
    }
}
