//! Strict percent-decoding of path segments and query strings.
//!
//! `percent_encoding` passes malformed escapes (`%zz`, a lone `%`) through unchanged; a
//! gateway must reject them instead (400), so escapes are validated first. Decoded bytes must
//! be UTF-8, because every target (field names, strings, numbers) is text.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Why a component did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    MalformedEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MalformedEscape => "malformed percent-encoding",
            Self::NotUtf8 => "percent-encoding that is not UTF-8",
        })
    }
}

/// Decodes one path segment (`+` is a literal plus in paths). Borrows when there is nothing
/// to decode, which is the common case.
pub fn path_segment(raw: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    validate_escapes(raw)?;
    percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| DecodeError::NotUtf8)
}

/// Whether a raw path segment carries an encoded slash (`%2F`, either case).
pub fn has_encoded_slash(raw: &str) -> bool {
    find_encoded_slash(raw).is_some()
}

/// Decodes one path segment of a multi-segment variable (`{x=**}`, `{x=a/*}`) as
/// `google/api/http.proto`'s reserved expansion says: every escape but `%2F` (`%2f`), which
/// stays as sent, so that a slash inside a segment is told apart from the slashes between
/// segments.
pub fn reserved_path_segment(raw: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !has_encoded_slash(raw) {
        return path_segment(raw);
    }
    validate_escapes(raw)?;
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = find_encoded_slash(rest) {
        out.push_str(&path_segment(&rest[..at])?);
        out.push_str(&rest[at..at + 3]);
        rest = &rest[at + 3..];
    }
    out.push_str(&path_segment(rest)?);
    Ok(Cow::Owned(out))
}

fn find_encoded_slash(raw: &str) -> Option<usize> {
    raw.as_bytes()
        .windows(3)
        .position(|w| w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
}

/// Decodes one query-string key or value (`application/x-www-form-urlencoded`: `+` is a space).
pub(super) fn query_component(raw: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !raw.contains(['%', '+']) {
        return Ok(Cow::Borrowed(raw));
    }
    validate_escapes(raw)?;
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| DecodeError::NotUtf8)?;
    Ok(Cow::Owned(decoded.into_owned()))
}

/// Splits a raw query string into raw `(key, value)` pairs; a pair without `=` has an empty
/// value, empty pairs (`a=1&&b=2`) are skipped.
pub(super) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn validate_escapes(raw: &str) -> Result<(), DecodeError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(DecodeError::MalformedEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_strictly() {
        assert_eq!(path_segment("a%20b").as_deref(), Ok("a b"));
        assert_eq!(path_segment("a+b").as_deref(), Ok("a+b"));
        assert_eq!(path_segment("%2F").as_deref(), Ok("/"));
        assert_eq!(path_segment("%zz"), Err(DecodeError::MalformedEscape));
        assert_eq!(path_segment("ab%2"), Err(DecodeError::MalformedEscape));
        assert_eq!(path_segment("%ff"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn reserved_segments_keep_encoded_slashes_as_sent() {
        assert_eq!(
            reserved_path_segment("a%2Fb%2fc").as_deref(),
            Ok("a%2Fb%2fc")
        );
        assert_eq!(
            reserved_path_segment("%20%2F%C3%A9").as_deref(),
            Ok(" %2Fé")
        );
        assert_eq!(reserved_path_segment("caf%C3%A9").as_deref(), Ok("café"));
        // A split UTF-8 sequence around the slash is still not UTF-8.
        assert_eq!(
            reserved_path_segment("%C3%2F%A9"),
            Err(DecodeError::NotUtf8)
        );
        assert_eq!(
            reserved_path_segment("%2F%zz"),
            Err(DecodeError::MalformedEscape)
        );
    }

    #[test]
    fn query_components_turn_plus_into_space() {
        assert_eq!(query_component("a+b%2B").as_deref(), Ok("a b+"));
        let pairs: Vec<_> = query_pairs("a=1&&b&c=").collect();
        assert_eq!(pairs, [("a", "1"), ("b", ""), ("c", "")]);
    }
}
