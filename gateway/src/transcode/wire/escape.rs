//! JSON strings as serde_json writes them: `"` and `\` escaped, control characters as `\n`,
//! `\t`... or `\u00XX`, everything else (non-ASCII, `/`, DEL) as it is.
//!
//! serde_json looks at each byte in turn; here eight bytes at a time are checked for one that
//! needs escaping (a SWAR test on a `u64`), and the runs between are copied whole: most text
//! has nothing to escape, and this was a tenth of the gateway's instructions on a page of
//! articles.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Writes `text` quoted and escaped.
pub(super) fn string(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        let escape = ESCAPE[byte as usize];
        if escape != 0 {
            out.extend_from_slice(&bytes[run..i]);
            write_escape(byte, escape, out);
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Whether any byte of `word` is below 0x20, `"` or `\`. Each test is exact for "some byte
/// is": `(x - 0x01..) & !x & 0x80..` is non-zero iff a byte of `x` is zero.
fn needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS != 0
}

fn write_escape(byte: u8, escape: u8, out: &mut Vec<u8>) {
    if escape == b'u' {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

/// serde_json's table: what follows the backslash, or 0 for a byte written as it is.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every offset of a chunk, against serde_json's own writer.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut texts: Vec<String> = Vec::new();
        for c in (0u8..0x80).map(char::from).chain(['é', '\u{2028}', '😀']) {
            for offset in 0..10 {
                let mut text = "abcdefghijklmnop"[..offset].to_owned();
                text.push(c);
                text.push_str("tail of text");
                texts.push(text);
            }
        }
        texts.push(String::new());
        texts.push("\"\\\"\\".repeat(5));
        for text in texts {
            let mut ours = Vec::new();
            string(&text, &mut ours);
            let theirs = serde_json::to_vec(&text).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{text:?}"
            );
        }
    }
}
