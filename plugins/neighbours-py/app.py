"""Example plugin `neighbours`, in Python: neighbour entries per interface,
counted by NUD state.

It subscribes to links (for their names) and neighbours, and is mp-safe: it
touches nothing but its own memory, so its calls may run beside other
plugins' calls.

`query` answers, for every interface holding at least one entry:

    {"interfaces": {"v0": {"ifindex": 3, "reachable": 1, "stale": 2,
                           "failed": 1, "incomplete": 0, "delay": 0,
                           "probe": 0, "noarp": 0, "permanent": 0,
                           "none": 0, "total": 4}},
     "syncs": 2, "unexpected": 0}

An entry counts under its state as `ip neigh` names it: the lowest NUD bit
set, or "none" for none. A request naming an interface ("v0") answers that
interface's counts alone. `unexpected` counts events of kinds the plugin did
not ask for, which the host must never send.

Built by componentize-py (see `cargo xtask build`, or
docs/plugin-authoring.md for the commands); `wit_world` is the package it
generates from wit/dataplane.wit.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types
from wit_world.imports.types import (
    Event_LinkAdd,
    Event_LinkDel,
    Event_NeighbourAdd,
    Event_NeighbourDel,
    Event_SyncBegin,
    Event_SyncEnd,
    LogLevel,
    NudState,
    ObjectKind,
)

# State names in NUD bit order, as `ip neigh` prints them.
STATES = [
    ("incomplete", NudState.INCOMPLETE),
    ("reachable", NudState.REACHABLE),
    ("stale", NudState.STALE),
    ("delay", NudState.DELAY),
    ("probe", NudState.PROBE),
    ("failed", NudState.FAILED),
    ("noarp", NudState.NOARP),
    ("permanent", NudState.PERMANENT),
]
KINDS = (ObjectKind.LINK, ObjectKind.NEIGHBOUR)


def state_name(state):
    for name, bit in STATES:
        if state & bit:
            return name
    return "none"


def ip_key(ip):
    """A hashable key for a wit ip-address (v4: int, v6: a pair of ints)."""
    return (type(ip).__name__, ip.value)


class Tracker:
    """Everything the plugin holds; one per instance (module state)."""

    def __init__(self):
        self.names = {}  # ifindex -> link name
        self.neighbours = {}  # (ifindex, ip key) -> state name
        self.stale = {}  # kind -> keys not re-added since its sync-begin
        self.syncs = 0
        self.unexpected = 0

    def unmark(self, kind, key):
        """A key re-added during a sync of its kind survives the sweep."""
        stale = self.stale.get(kind)
        if stale:
            stale.discard(key)

    def apply(self, event):
        if isinstance(event, Event_NeighbourAdd):
            n = event.value
            key = (n.ifindex, ip_key(n.ip))
            self.neighbours[key] = state_name(n.state)
            self.unmark(ObjectKind.NEIGHBOUR, key)
        elif isinstance(event, Event_NeighbourDel):
            n = event.value
            self.neighbours.pop((n.ifindex, ip_key(n.ip)), None)
        elif isinstance(event, Event_LinkAdd):
            self.names[event.value.ifindex] = event.value.name
            self.unmark(ObjectKind.LINK, event.value.ifindex)
        elif isinstance(event, Event_LinkDel):
            self.names.pop(event.value.ifindex, None)
        elif isinstance(event, Event_SyncBegin) and event.value in KINDS:
            held = self.names if event.value == ObjectKind.LINK else self.neighbours
            self.stale[event.value] = set(held)
        elif isinstance(event, Event_SyncEnd) and event.value in self.stale:
            held = self.names if event.value == ObjectKind.LINK else self.neighbours
            for key in self.stale.pop(event.value):
                del held[key]
            self.syncs += 1
        else:
            self.unexpected += 1

    def counts(self):
        interfaces = {}
        for (ifindex, _), state in self.neighbours.items():
            name = self.names.get(ifindex, "if%d" % ifindex)
            row = interfaces.get(name)
            if row is None:
                row = {"ifindex": ifindex}
                row.update((s, 0) for s, _ in STATES)
                row["none"] = 0
                row["total"] = 0
                interfaces[name] = row
            row[state] += 1
            row["total"] += 1
        return interfaces


TRACKER = Tracker()


class Handler(exports.Handler):
    def describe(self):
        return types.PluginInfo(
            name="neighbours", version="0.1.0", mp_safe=True, kinds=list(KINDS)
        )

    def init(self, config):
        if config.strip():
            raise Err("neighbours takes no config, got %r" % config)
        host.log(LogLevel.DEBUG, "counting neighbours per interface")

    def handle(self, events):
        for event in events:
            TRACKER.apply(event)

    def query(self, request):
        interfaces = TRACKER.counts()
        request = request.strip()
        if request in ("", "{}"):
            answer = {
                "interfaces": interfaces,
                "syncs": TRACKER.syncs,
                "unexpected": TRACKER.unexpected,
            }
        elif request in interfaces:
            answer = interfaces[request]
        elif request in TRACKER.names.values():
            answer = {"total": 0}
        else:
            raise Err("no interface named %r" % request)
        return json.dumps(answer, sort_keys=True)
