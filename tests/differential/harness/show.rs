//! Compact printing of names, bytes and errors for reports.

use super::*;

/// Bytes as `b"..."` pieces, runs of 8 or more equal bytes as `[0x78; 200]`,
/// cut after about 200 characters (with the length).
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    let mut parts = 0;
    let flush = |out: &mut String, literal: &mut String, parts: &mut usize| {
        if !literal.is_empty() {
            if *parts > 0 {
                out.push_str(" + ");
            }
            let _ = write!(out, "b\"{literal}\"");
            literal.clear();
            *parts += 1;
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        if out.len() + literal.len() > 200 {
            flush(&mut out, &mut literal, &mut parts);
            let _ = write!(out, " + … ({} bytes in all)", bytes.len());
            return out;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == bytes[i]).count();
        if run >= 8 {
            flush(&mut out, &mut literal, &mut parts);
            if parts > 0 {
                out.push_str(" + ");
            }
            let _ = write!(out, "[{:#04x}; {run}]", bytes[i]);
            parts += 1;
            i += run;
        } else {
            literal.extend(std::ascii::escape_default(bytes[i]).map(char::from));
            i += 1;
        }
    }
    flush(&mut out, &mut literal, &mut parts);
    if parts == 0 {
        out.push_str("b\"\"");
    }
    out
}

/// A string as `"..."` pieces, runs of 8 or more equal chars as `"é"×127`.
pub fn show_str(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|&&c| c == chars[i]).count();
        if run >= 8 {
            if !literal.is_empty() {
                parts.push(format!("{literal:?}"));
                literal.clear();
            }
            parts.push(format!("{:?}×{run}", chars[i].to_string()));
            i += run;
        } else {
            literal.push(chars[i]);
            i += 1;
        }
    }
    if !literal.is_empty() || parts.is_empty() {
        parts.push(format!("{literal:?}"));
    }
    parts.join(" + ")
}

/// An error with long names (hex of long blob names, long partitions) cut.
pub(super) fn show_error(e: &Error) -> String {
    abbreviate(&format!("{e:?}"))
}

/// Cuts every quoted string longer than 48 characters to its start, its
/// length and its end.
pub(super) fn abbreviate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let Some(end) = rest.find('"') else {
            break;
        };
        let inner = &rest[..end];
        let count = inner.chars().count();
        if count > 48 {
            let head: String = inner.chars().take(20).collect();
            let tail: String = inner.chars().skip(count - 8).collect();
            let _ = write!(out, "{head}…({count} chars)…{tail}");
        } else {
            out.push_str(inner);
        }
        out.push('"');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
