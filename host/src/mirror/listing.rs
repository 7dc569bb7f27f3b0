//! The mirror's objects of one kind as JSON text, a chunk at a time:
//! `GET /mirror/{kind}` writes it from a snapshot, off the engine's thread,
//! and streams each chunk as it is filled, so a full table is never one
//! piece of text anywhere.

use serde_json::Value;

use super::{Mirror, aliases};
use crate::netlink::kind::Kind;
use crate::netlink::route;

/// Bytes gathered before they are handed on.
pub const CHUNK: usize = 64 << 10;

/// Writes values into a buffer, a separator between two, and hands the
/// buffer on whenever it holds a chunk.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    separator: &'a [u8],
    first: bool,
    flush: &'a mut dyn FnMut(&mut Vec<u8>) -> bool,
    going: bool,
}

impl Writer<'_> {
    /// One value, written by `write`; false once `flush` said to stop.
    fn put(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if self.going {
            if !std::mem::take(&mut self.first) {
                self.out.extend_from_slice(self.separator);
            }
            write(self.out);
            if self.out.len() >= CHUNK {
                self.going = (self.flush)(self.out);
            }
        }
        self.going
    }

    fn value(&mut self, value: &Value) -> bool {
        self.put(|out| {
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(out, value);
        })
    }
}

impl Mirror {
    /// Every object of `kind` as compact JSON, `separator` between two,
    /// into `out`; `flush` is called whenever `out` holds at least a chunk
    /// (it takes what it hands on) and stops the listing by returning
    /// false. False if it did. Routes come by table, family and prefix,
    /// each key's in the kernel's order (the one in use first).
    pub fn write_json(
        &self,
        kind: Kind,
        separator: &[u8],
        out: &mut Vec<u8>,
        flush: &mut dyn FnMut(&mut Vec<u8>) -> bool,
    ) -> bool {
        let mut w = Writer {
            out,
            separator,
            first: true,
            flush,
            going: true,
        };
        match kind {
            Kind::Link => self.links.each(|l| {
                w.value(&crate::netlink::link::json(l));
            }),
            Kind::Address => self.addresses.each(|a| {
                w.value(&crate::netlink::address::json(a));
            }),
            Kind::Neighbour => self.neighbours.each(|n| {
                w.value(&crate::netlink::neighbour::json(n));
            }),
            Kind::Nexthop => self.nexthops.each(|nh| {
                w.value(&crate::netlink::nexthop::json(nh));
            }),
            Kind::Rule => self.rules.each(|r| {
                w.value(&crate::netlink::rule::json(r));
            }),
            Kind::Route => {
                self.routes.for_each_ref_after(None, |r| {
                    w.put(|out| route::write_json(&route::from_lpm(r), out));
                    for (at, alias) in self.aliases.behind(&r.key()).iter().enumerate() {
                        let alias = aliases::at_position(route::from_lpm(alias.as_ref()), at + 1);
                        w.put(|out| route::write_json(&alias, out));
                    }
                    w.going
                });
            }
        }
        w.going
    }

    /// Every object of `kind`, as [`Mirror::write_json`] lists them, in one
    /// value: for tests and small kinds.
    pub fn to_json(&self, kind: Kind) -> Value {
        let mut text = b"[".to_vec();
        self.write_json(kind, b",", &mut text, &mut |_| true);
        text.push(b']');
        serde_json::from_slice(&text).unwrap_or(Value::Null)
    }
}
