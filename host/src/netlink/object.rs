//! What the mirror needs of a kernel object it keeps in a keyed table:
//! its key as the kernel keys it, whether two versions differ in anything
//! a plugin sees, the events that announce it, and its JSON. Each kind's
//! file (`link`, `address`, `neighbour`) implements it beside the kind's
//! decoding, so one file holds all there is to know of one kind.

use serde_json::Value;

use crate::wit::Event;

/// A kernel object kept by the mirror, keyed as the kernel keys it.
pub trait Object: Clone {
    /// The kernel's identity of the object: two versions with one key are
    /// one object, the later replacing the earlier.
    type Key: Ord + Copy;
    /// Its key.
    fn key(&self) -> Self::Key;
    /// True when `other` differs in nothing a plugin sees.
    fn same(&self, other: &Self) -> bool;
    /// The event announcing it, new or changed; none for a kind the plugin
    /// API does not have.
    fn added(self) -> Option<Event>;
    /// The event announcing it gone; none for a kind the plugin API does
    /// not have.
    fn deleted(self) -> Option<Event>;
    /// Its JSON for `dphost ctl mirror`.
    fn json(&self) -> Value;
}
