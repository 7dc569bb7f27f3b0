//! Mutations that know TOML's shape, line by line: a value swapped with
//! another key's or replaced by an edge value (0, -1, 2^63, 1e309, huge,
//! empty, non-UTF-8 strings, arrays, tables), a known key or section header
//! added where it does not belong, a section duplicated or removed, a line
//! duplicated or removed.

use crate::rng::Rng;

/// Every key the configuration knows, in any section.
const KEYS: [&str; 23] = [
    "netns",
    "control",
    "cache_dir",
    "rx_buf_size",
    "batch_size",
    "batch_delay_ms",
    "sync_batch_limit",
    "sync_batch_delay_ms",
    "sync_attempt_delay_ms",
    "audit_interval_s",
    "path",
    "name",
    "config",
    "memory_cap_mib",
    "deadline_ms",
    "query_deadline_ms",
    "queue_batches",
    "watch",
    "maps",
    "object",
    "program",
    "interfaces",
    "pin_dir",
];

/// Section headers, right and wrong.
const HEADERS: [&str; 8] = [
    "[netlink]",
    "[[plugin]]",
    "[dataplane]",
    "[plugin]",
    "[[netlink]]",
    "[[dataplane]]",
    "[netlink.x]",
    "[plugin.maps]",
];

/// Values on the edges of what the reader takes: integer limits and one
/// past them, floats that overflow, strings and arrays of odd content.
const VALUES: [&str; 36] = [
    "0",
    "-1",
    "1",
    "4095",
    "4096",
    "2147483648",
    "2147483649",
    "1048577",
    "65536",
    "600001",
    "86401",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "-0",
    "0x7fffffffffffffff",
    "1_000",
    "\"\"",
    "\"\\u0000\"",
    "\"unix:\"",
    "\"tcp:0.0.0.0:1\"",
    "[\"unix:/tmp/x\", \"tcp:127.0.0.1:0\"]",
    "[\"a\", \"a:read\", \"b:write\", \":\"]",
    "[\"\", \"r0\"]",
    "true",
    "[]",
    "{}",
    "[[]]",
    "{ x = 1 }",
    "1979-05-27T07:32:00Z",
    "'''\n'''",
];

/// One TOML-aware mutation of the text's lines.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let keyed: Vec<usize> = (0..lines.len())
        .filter(|i| value_at(&lines[*i]).is_some())
        .collect();
    match rng.below(8) {
        0 if !keyed.is_empty() => {
            let line = *rng.pick(&keyed);
            let value = edge_value(rng);
            set_value(&mut lines[line], &value);
        }
        1 if !keyed.is_empty() => {
            let (a, b) = (*rng.pick(&keyed), *rng.pick(&keyed));
            let va = lines[a][value_at(&lines[a]).unwrap_or(0)..].to_vec();
            let vb = lines[b][value_at(&lines[b]).unwrap_or(0)..].to_vec();
            set_value(&mut lines[a], &vb);
            set_value(&mut lines[b], &va);
        }
        2 => {
            let (start, end) = section(rng, &lines);
            let copy = lines[start..end].to_vec();
            let to = *rng.pick(&[start, end, lines.len()]);
            lines.splice(to..to, copy);
        }
        3 => {
            let (start, end) = section(rng, &lines);
            lines.drain(start..end);
        }
        4 => {
            let mut line = format!("{} = ", rng.pick(&KEYS)).into_bytes();
            line.extend(edge_value(rng));
            lines.insert(rng.below(lines.len() + 1), line);
        }
        5 => {
            let header = rng.pick(&HEADERS).as_bytes().to_vec();
            lines.insert(rng.below(lines.len() + 1), header);
        }
        6 => {
            let at = rng.below(lines.len());
            let copy = lines[at].clone();
            lines.insert(at, copy);
        }
        _ => {
            lines.remove(rng.below(lines.len()));
        }
    }
    *data = lines.join(&b'\n');
}

/// The offset of a `key = value` line's value; None for comments,
/// headers and lines without `=`.
fn value_at(line: &[u8]) -> Option<usize> {
    let first = line.iter().find(|b| !b.is_ascii_whitespace())?;
    if matches!(first, b'#' | b'[') {
        return None;
    }
    line.iter().position(|b| *b == b'=').map(|at| at + 1)
}

fn set_value(line: &mut Vec<u8>, value: &[u8]) {
    if let Some(at) = value_at(line) {
        line.truncate(at);
        line.push(b' ');
        line.extend_from_slice(value);
    }
}

/// A listed edge value, a huge string, or a string of bytes that are not
/// UTF-8.
fn edge_value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => {
            let mut s = b"\"".to_vec();
            s.extend(std::iter::repeat_n(b'a', 1 + rng.below(4096)));
            s.push(b'"');
            s
        }
        1 => {
            let mut s = b"\"".to_vec();
            let len = 1 + rng.below(8);
            s.extend(rng.bytes(len).iter().map(|b| b | 0x80));
            s.push(b'"');
            s
        }
        _ => rng.pick(&VALUES).as_bytes().to_vec(),
    }
}

/// The lines of a random section: from a header (or the top) to the next
/// header.
fn section(rng: &mut Rng, lines: &[Vec<u8>]) -> (usize, usize) {
    let headers: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].first() == Some(&b'['))
        .collect();
    let start = if headers.is_empty() || rng.one_in(8) {
        0
    } else {
        *rng.pick(&headers)
    };
    let end = headers
        .iter()
        .copied()
        .find(|h| *h > start)
        .unwrap_or(lines.len());
    (start, end)
}
