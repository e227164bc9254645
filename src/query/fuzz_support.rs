//! What the parsers' property tests share: a valid query mutated at a
//! character boundary — a slice cut out, a token spliced in, or the tail
//! cut off — as input that must come back as a tree or an error.

/// The largest char boundary of `s` at or before `i`.
pub fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `q` mutated at byte `at` (clamped to a boundary): `mode` 0 cuts `len`
/// bytes out, 1 splices ` token ` in, 2 keeps only what comes before.
pub fn mutate(q: &str, at: usize, len: usize, token: &str, mode: u8) -> String {
    let start = floor_boundary(q, at);
    match mode {
        0 => format!(
            "{}{}",
            &q[..start],
            &q[floor_boundary(q, start + len).max(start)..]
        ),
        1 => format!("{} {token} {}", &q[..start], &q[start..]),
        _ => q[..start].to_string(),
    }
}
