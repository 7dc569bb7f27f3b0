//! The IPv4 routes that wait behind the one in use on their key (`ip route
//! append`), which the host delivers at position 1 and up. The kernel
//! forwards by position 0 only, so they stay out of the LPM table; they
//! are kept so the FIB lists every route the kernel holds, and so each
//! takes its place the moment the host moves it to position 0.

use std::collections::BTreeMap;

use dphost_lpm::{Fib, Route, RouteKey};

/// Waiting routes by key and position, each with its stale mark.
#[derive(Default)]
pub struct Waiting {
    map: BTreeMap<(RouteKey, u32), (Route, bool)>,
}

impl Waiting {
    /// Stores `route` at `position` of its key, in place of any there.
    pub fn put(&mut self, position: u32, route: Route) {
        self.map.insert((route.key(), position), (route, false));
    }

    /// Removes the route at `position` of `key`.
    pub fn remove(&mut self, key: RouteKey, position: u32) {
        self.map.remove(&(key, position));
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Marks every one stale: a sync re-adds those still there.
    pub fn mark(&mut self) {
        self.map.values_mut().for_each(|(_, stale)| *stale = true);
    }

    /// Removes the stale ones; returns how many went.
    pub fn sweep(&mut self) -> usize {
        let before = self.map.len();
        self.map.retain(|_, (_, stale)| !*stale);
        before - self.map.len()
    }

    /// The ones waiting behind `key`, by position.
    pub fn behind(&self, key: RouteKey) -> impl Iterator<Item = (u32, &Route)> {
        self.map
            .range((key, 1)..=(key, u32::MAX))
            .map(|((_, position), (route, _))| (*position, route))
    }

    /// The ones whose key has no route in use in `fib`, by key and
    /// position.
    pub fn orphans<'a>(&'a self, fib: &'a Fib) -> impl Iterator<Item = (u32, &'a Route)> {
        self.map
            .iter()
            .filter(|((key, _), _)| fib.get_ref(key).is_none())
            .map(|((_, position), (route, _))| (*position, route))
    }
}
