//! Mutations: how the engine turns a corpus entry into a new input. Each
//! execution applies one to eight, each picked from the byte-level ones
//! here or, half the time, from those that know the input's structure
//! ([`netlink`] for datagrams, [`toml`] for configuration text). Never runs
//! a target.

pub mod netlink;
pub mod toml;

use crate::rng::Rng;
use crate::targets::Input;

/// The largest datagram a mutation leaves: the size of the receive buffer
/// the readers use. Threat: inputs that grow by duplication without bound
/// make each execution slower (the decoders' cost grows with length), so a
/// run would stall instead of exploring.
pub const MAX_DATAGRAM: usize = 64 << 10;
/// The largest configuration text a mutation leaves; the same threat. The
/// reader's cost per byte is far higher, and no branch needs a large file
/// (a long string is as long at 4 KiB as at 64).
pub const MAX_TOML: usize = 8 << 10;

/// The most mutations stacked on one input.
const MAX_STACK: usize = 8;

/// Values that sit on the edges of integer ranges, where length and offset
/// arithmetic goes wrong.
pub const INTERESTING: [u32; 11] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// Changes `data` in place by one to eight mutations; `others` is the
/// rest of the target's corpus, for splicing.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>], input: Input) {
    for _ in 0..=rng.below(MAX_STACK) {
        let aware = rng.one_in(2);
        match input {
            Input::Netlink if aware => netlink::mutate(rng, data, others),
            Input::Toml if aware => toml::mutate(rng, data),
            _ => bytes(rng, data, others),
        }
        data.truncate(match input {
            Input::Netlink => MAX_DATAGRAM,
            Input::Toml => MAX_TOML,
        });
    }
}

/// One structure-blind mutation.
fn bytes(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    if data.is_empty() {
        let len = 1 + rng.below(64);
        *data = rng.bytes(len);
        return;
    }
    let at = rng.below(data.len());
    match rng.below(9) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = rng.next_u64() as u8,
        2 => put_interesting(rng, data, at),
        3 => {
            let len = 1 + rng.below(16);
            let span = rng.bytes(len);
            insert(data, at, &span);
        }
        4 => {
            let end = (at + 1 + rng.below(16)).min(data.len());
            data.drain(at..end);
        }
        5 => {
            let end = (at + 1 + rng.below(64)).min(data.len());
            let span = data[at..end].to_vec();
            let to = rng.below(data.len() + 1);
            insert(data, to, &span);
        }
        6 => splice(rng, data, others),
        7 => data.truncate(at),
        _ => {
            let other = rng.pick(others);
            let end = (at + 4).min(data.len());
            if let Some(from) = other.get(..end - at) {
                data[at..end].copy_from_slice(from);
            }
        }
    }
}

/// Writes an interesting value of 1, 2 or 4 bytes at `at`, in either byte
/// order (netlink is native-endian, addresses and ports big-endian).
pub fn put_interesting(rng: &mut Rng, data: &mut [u8], at: usize) {
    let value = *rng.pick(&INTERESTING);
    let width = *rng.pick(&[1, 2, 4]);
    let big = rng.one_in(4);
    let bytes = if big {
        value.to_be_bytes()
    } else {
        value.to_ne_bytes()
    };
    let bytes = if big {
        &bytes[4 - width..]
    } else {
        &bytes[..width]
    };
    let end = (at + width).min(data.len());
    data[at..end].copy_from_slice(&bytes[..end - at]);
}

/// Inserts `span` at `at` (at most the length).
pub fn insert(data: &mut Vec<u8>, at: usize, span: &[u8]) {
    data.splice(at..at, span.iter().copied());
}

/// This input's head and another entry's tail.
fn splice(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let other = rng.pick(others);
    data.truncate(rng.below(data.len() + 1));
    data.extend_from_slice(&other[rng.below(other.len() + 1)..]);
}

#[cfg(test)]
mod tests {
    use super::{MAX_DATAGRAM, mutate};
    use crate::rng::Rng;
    use crate::targets::Input;

    /// Mutations never grow an input past the cap, and do change it.
    #[test]
    fn stays_under_the_cap() {
        let mut rng = Rng::new(1);
        let others = vec![vec![7u8; 4000]];
        let mut data = vec![0u8; 100];
        let mut changed = 0;
        for _ in 0..2000 {
            let before = data.clone();
            mutate(&mut rng, &mut data, &others, Input::Netlink);
            assert!(data.len() <= MAX_DATAGRAM);
            changed += usize::from(before != data);
        }
        assert!(changed > 1000, "only {changed} of 2000 changed");
    }
}
