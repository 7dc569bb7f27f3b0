//! The Rust SDK for dphost plugins.
//!
//! A plugin implements [`Plugin`]: one method per event, each a no-op by
//! default, so an author writes only what the plugin needs. [`export_plugin!`]
//! exports it as a component of the `dataplane:handler@0.2.0` world
//! (`wit/0.2.0`); a plugin's [`Plugin::filter`] says which objects of its
//! kinds it wants. The batch loop ([`dispatch`]) lives here, not in every
//! plugin.
//!
//! ```ignore
//! #[derive(Default)]
//! struct Counter { routes: usize }
//!
//! impl dphost_sdk::Plugin for Counter {
//!     fn describe() -> dphost_sdk::PluginInfo {
//!         dphost_sdk::info("counter", env!("CARGO_PKG_VERSION"), true, &[dphost_sdk::ObjectKind::Route])
//!     }
//!     fn route_add(&mut self, _route: dphost_sdk::Route) { self.routes += 1; }
//! }
//!
//! dphost_sdk::export_plugin!(Counter);
//! ```
//!
//! The SDK also builds natively (the generated imports are never called
//! there), so a plugin's logic can be unit-tested and benchmarked with
//! `cargo test` on the host: [`log`] then writes to standard error.

pub mod addr;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.2.0",
        world: "dataplane-plugin",
        pub_export_macro: true,
        export_macro_name: "export_handler",
        default_bindings_module: "dphost_sdk::bindings",
    });
}

pub use bindings::dataplane::handler::types::{
    Address, Event, Family, Filter, GroupMember, HwAddress, IpAddress, IpPrefix, Link, LogLevel,
    Neighbour, NextHop, NextHops, Nexthop, NudState, ObjectKind, OperState, PluginInfo, Range,
    ResilientGroup, Route, RouteType, Rule, RuleAction, RuleSelector,
};

pub use bindings::exports::dataplane::handler::handler::{Answer, Page};

/// The BPF maps capability (WIT `maps`): open in [`Plugin::init`] the maps
/// the plugin's `[[plugin]]` table grants, then update them from events. A
/// plugin that never calls [`maps::open`] does not import the interface,
/// and needs no grant.
pub mod maps {
    pub use crate::bindings::dataplane::handler::maps::{
        BatchError, BpfMap, MapError, MapInfo, SizeError, open,
    };

    /// A map error in words, for a log line or a refusal.
    pub fn explain(error: &MapError) -> String {
        match error {
            MapError::NotGranted(name) => format!("map {name:?} is not granted"),
            MapError::NoSuchMap(name) => format!("the dataplane has no map {name:?}"),
            MapError::NotInInit => "maps are opened in init only".to_string(),
            MapError::BadSize(e) => format!(
                "the {} is {} bytes, the map's is {}",
                e.what, e.given, e.expected
            ),
            MapError::ReadOnly => "the map is granted read-only".to_string(),
            MapError::Os((errno, message)) => format!("{message} (errno {errno})"),
        }
    }
}

/// The WIT package version this SDK speaks.
pub const WIT_VERSION: &str = "0.2.0";

/// A dphost plugin. The host calls `describe`, then `init`, then delivers
/// every event through one method each, in order; `query` answers
/// introspection requests at any time between batches.
///
/// The host creates one instance per loaded plugin; `Default` builds it.
pub trait Plugin: Default + 'static {
    /// Name, version, whether calls may run in parallel with other plugins,
    /// and the object kinds wanted (no event of another kind is delivered).
    fn describe() -> PluginInfo;

    /// The config string from the host's configuration; an error refuses the load.
    fn init(&mut self, _config: &str) -> Result<(), String> {
        Ok(())
    }

    /// Which objects of its kinds the plugin wants, asked once after a
    /// successful [`Plugin::init`] (so the config can choose); the host drops
    /// the rest before delivery. By default, everything ([`everything`]).
    fn filter(&self) -> Filter {
        everything()
    }

    fn link_add(&mut self, _link: Link) {}
    fn link_del(&mut self, _link: Link) {}
    fn address_add(&mut self, _address: Address) {}
    fn address_del(&mut self, _address: Address) {}
    fn neighbour_add(&mut self, _neighbour: Neighbour) {}
    fn neighbour_del(&mut self, _neighbour: Neighbour) {}
    fn route_add(&mut self, _route: Route) {}
    fn route_del(&mut self, _route: Route) {}
    fn nexthop_add(&mut self, _nexthop: Nexthop) {}
    fn nexthop_del(&mut self, _nexthop: Nexthop) {}
    fn rule_add(&mut self, _rule: Rule) {}
    fn rule_del(&mut self, _rule: Rule) {}
    /// A full set of `kind` follows as adds; whatever is not re-added before
    /// [`Plugin::sync_end`] is gone.
    fn sync_begin(&mut self, _kind: ObjectKind) {}
    fn sync_end(&mut self, _kind: ObjectKind) {}
    /// The batch's last event was delivered: the place to flush work
    /// gathered from its events (many map updates in one call).
    fn batch_end(&mut self) {}

    fn query(&mut self, _request: &str) -> Result<String, String> {
        Err("this plugin answers no queries".to_string())
    }

    /// A query's answer, or its next page. By default [`Plugin::query`]'s
    /// answer, whole. A plugin whose answer can be as long as a table
    /// answers in pages instead ([`Answer::Page`]): some elements, and a
    /// cursor of its choosing the host hands back (with the same request)
    /// for the next page, until a page has none. Each call has the query
    /// deadline; the host gives the client one JSON array of all pages'
    /// elements. Events may come between pages: resume from a cursor that
    /// survives them (the last key given, not an index).
    fn query_page(&mut self, request: &str, cursor: Option<&str>) -> Result<Answer, String> {
        match cursor {
            None => self.query(request).map(Answer::Whole),
            Some(_) => Err("this plugin answers in one piece, not in pages".to_string()),
        }
    }
}

/// Delivers one batch to a plugin, event by event, moving each event's data
/// into the method that takes it, then calls [`Plugin::batch_end`].
pub fn dispatch<P: Plugin>(plugin: &mut P, events: Vec<Event>) {
    for event in events {
        match event {
            Event::LinkAdd(link) => plugin.link_add(link),
            Event::LinkDel(link) => plugin.link_del(link),
            Event::AddressAdd(address) => plugin.address_add(address),
            Event::AddressDel(address) => plugin.address_del(address),
            Event::NeighbourAdd(neighbour) => plugin.neighbour_add(neighbour),
            Event::NeighbourDel(neighbour) => plugin.neighbour_del(neighbour),
            Event::RouteAdd(route) => plugin.route_add(route),
            Event::RouteDel(route) => plugin.route_del(route),
            Event::SyncBegin(kind) => plugin.sync_begin(kind),
            Event::SyncEnd(kind) => plugin.sync_end(kind),
            Event::NexthopAdd(nexthop) => plugin.nexthop_add(nexthop),
            Event::NexthopDel(nexthop) => plugin.nexthop_del(nexthop),
            Event::RuleAdd(rule) => plugin.rule_add(rule),
            Event::RuleDel(rule) => plugin.rule_del(rule),
        }
    }
    plugin.batch_end();
}

/// Builds a [`PluginInfo`].
pub fn info(name: &str, version: &str, mp_safe: bool, kinds: &[ObjectKind]) -> PluginInfo {
    PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        mp_safe,
        kinds: kinds.to_vec(),
    }
}

/// True when a neighbour in `state` can forward: one of REACHABLE, STALE,
/// DELAY, PROBE, NOARP or PERMANENT is set (the kernel's NUD_VALID). The
/// host delivers entries in every state; INCOMPLETE, FAILED and NONE ones
/// are not usable.
pub fn is_usable(state: NudState) -> bool {
    [
        NudState::REACHABLE,
        NudState::STALE,
        NudState::DELAY,
        NudState::PROBE,
        NudState::NOARP,
        NudState::PERMANENT,
    ]
    .iter()
    .any(|usable| state.bits() & usable.bits() != 0)
}

/// Every object kind, in sync order.
pub const ALL_KINDS: [ObjectKind; 6] = [
    ObjectKind::Link,
    ObjectKind::Address,
    ObjectKind::Neighbour,
    ObjectKind::Nexthop,
    ObjectKind::Rule,
    ObjectKind::Route,
];

/// The kinds API 0.1.0 had: links, addresses, neighbours, routes.
pub const KINDS_OF_0_1: [ObjectKind; 4] = [
    ObjectKind::Link,
    ObjectKind::Address,
    ObjectKind::Neighbour,
    ObjectKind::Route,
];

/// The filter that admits everything of a plugin's kinds.
pub fn everything() -> Filter {
    Filter {
        families: Vec::new(),
        tables: Vec::new(),
        protocols: Vec::new(),
        prefixes: Vec::new(),
    }
}

/// Writes a line to the host's log, tagged with the plugin's name.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::dataplane::handler::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Exports a [`Plugin`] as the component's `handler` interface.
///
/// The instance lives in a single static cell: a component instance is
/// single-threaded, and the host never re-enters a plugin.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // Natively (tests, benchmarks) there is no component to export to.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Export;

            thread_local! {
                static INSTANCE: ::core::cell::RefCell<Option<$plugin>> =
                    const { ::core::cell::RefCell::new(None) };
            }

            fn with<R>(f: impl FnOnce(&mut $plugin) -> R) -> R {
                INSTANCE.with_borrow_mut(|slot| f(slot.get_or_insert_with(<$plugin>::default)))
            }

            impl $crate::bindings::exports::dataplane::handler::handler::Guest for Export {
                fn describe() -> $crate::PluginInfo {
                    <$plugin as $crate::Plugin>::describe()
                }
                fn init(config: String) -> Result<$crate::Filter, String> {
                    with(|p| {
                        $crate::Plugin::init(p, &config)?;
                        Ok($crate::Plugin::filter(p))
                    })
                }
                fn handle(events: Vec<$crate::Event>) {
                    with(|p| $crate::dispatch(p, events))
                }
                fn query(
                    request: String,
                    cursor: Option<String>,
                ) -> Result<$crate::Answer, String> {
                    with(|p| $crate::Plugin::query_page(p, &request, cursor.as_deref()))
                }
            }

    $crate::bindings::export_handler!(Export with_types_in $crate::bindings);
        };
    };
}
