"""Example plugin `routes`, in Python, of API 0.2.0: the routes of the
tables its config names, and nothing else.

Config: the table ids to follow, comma-separated ("100" or "100,200");
empty for every table. `init` returns them as the plugin's filter, so the
host gives it only those tables' routes: on a host with a full table in
`main`, a plugin following table 100 is called with, and holds, table
100 alone.

`query` answers:

    {"routes": 1000, "tables": {"100": 1000},
     "events": {"route-add": 1000, "sync-begin": 1, ...},
     "syncs": 1, "unexpected": 0}

`unexpected` counts routes outside its tables, which the host must never
send. Built by componentize-py from wit/0.2.0 (see `cargo xtask build`).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types
from wit_world.imports.types import (
    Event_RouteAdd,
    Event_RouteDel,
    Event_SyncBegin,
    Event_SyncEnd,
    LogLevel,
    ObjectKind,
)


def route_key(r):
    """The kernel's key of a route (table, family, dst, tos, metric), and its
    position among the IPv4 routes of that key (`ip route append`)."""
    return (r.table, type(r.dst.address).__name__, r.dst.address.value, r.dst.length, r.tos, r.metric,
            r.position)


class Follower:
    """Everything the plugin holds; one per instance (module state)."""

    def __init__(self):
        self.tables = set()
        self.routes = {}  # key -> nexthop id or None
        self.stale = None  # keys not re-added since sync-begin(route)
        self.events = {}
        self.syncs = 0
        self.unexpected = 0

    def count(self, name):
        self.events[name] = self.events.get(name, 0) + 1

    def wanted(self, route):
        if self.tables and route.table not in self.tables:
            self.unexpected += 1
            return False
        return True

    def apply(self, event):
        if isinstance(event, Event_RouteAdd):
            self.count("route-add")
            if self.wanted(event.value):
                key = route_key(event.value)
                self.routes[key] = event.value.nhid
                if self.stale is not None:
                    self.stale.discard(key)
        elif isinstance(event, Event_RouteDel):
            self.count("route-del")
            if self.wanted(event.value):
                self.routes.pop(route_key(event.value), None)
        elif isinstance(event, Event_SyncBegin) and event.value == ObjectKind.ROUTE:
            self.count("sync-begin")
            self.stale = set(self.routes)
        elif isinstance(event, Event_SyncEnd) and event.value == ObjectKind.ROUTE:
            self.count("sync-end")
            for key in self.stale or ():
                del self.routes[key]
            self.stale = None
            self.syncs += 1
        else:
            self.count("other")
            self.unexpected += 1


FOLLOWER = Follower()


class Handler(exports.Handler):
    def describe(self):
        return types.PluginInfo(
            name="routes", version="0.2.0", mp_safe=True, kinds=[ObjectKind.ROUTE]
        )

    def init(self, config):
        try:
            tables = [int(t) for t in config.split(",") if t.strip()]
        except ValueError:
            raise Err("routes takes table ids like \"100,200\", got %r" % config)
        FOLLOWER.tables = set(tables)
        host.log(LogLevel.DEBUG, "following tables %r" % (tables or "all"))
        # A list<u8> is `bytes` in componentize-py.
        return types.Filter(families=[], tables=tables, protocols=b"", prefixes=[])

    def handle(self, events):
        for event in events:
            FOLLOWER.apply(event)

    def query(self, request, cursor):
        tables = {}
        for key in FOLLOWER.routes:
            tables[str(key[0])] = tables.get(str(key[0]), 0) + 1
        return exports.handler.Answer_Whole(json.dumps(
            {
                "routes": len(FOLLOWER.routes),
                "tables": tables,
                "events": FOLLOWER.events,
                "syncs": FOLLOWER.syncs,
                "unexpected": FOLLOWER.unexpected,
            },
            sort_keys=True,
        ))
