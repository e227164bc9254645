//! The CRC-32 trailer of o11ydb's sidecar files (block bloom indexes, row
//! indexes, service-graph edges files): the encoder appends the checksum
//! of everything before it; the decoder gets the body back only if the
//! trailer matches.

/// Appends the CRC-32 of `out` to it.
pub fn append_crc32(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// `bytes` without its CRC-32 trailer, or `None` when the trailer is
/// missing or does not match.
pub fn verified_body(bytes: &[u8]) -> Option<&[u8]> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    (crc32fast::hash(body).to_le_bytes() == crc).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_verifies_and_a_changed_byte_does_not() {
        let mut file = b"body".to_vec();
        append_crc32(&mut file);
        assert_eq!(verified_body(&file), Some(&b"body"[..]));
        file[0] ^= 1;
        assert_eq!(verified_body(&file), None);
        assert_eq!(verified_body(&[1, 2, 3]), None);
    }
}
