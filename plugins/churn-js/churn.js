// Example plugin `churn`, in JavaScript: route adds and deletes over the last
// minute, per protocol and per routing table.
//
// It subscribes to routes only and is mp-safe: it touches nothing but its own
// memory, so its calls may run beside other plugins' calls.
//
// Only live changes count. The adds between a sync-begin(route) and its
// sync-end are the host replaying what it holds (at load, at a reload, after
// lost notifications), not churn; the plugin counts those syncs instead.
//
// `query` answers
//   {"window_seconds":60,
//    "by_protocol":{"static":{"adds":12,"dels":3},...},
//    "by_table":{"254":{"adds":10,"dels":3},...},
//    "total":{"adds":15,"dels":3},"syncs":1,"unexpected":0}
// A protocol is named as iproute2 names it (kernel, boot, static, bgp, ...),
// or by its number. `unexpected` counts events of kinds the plugin did not
// ask for, which the host must never send.
//
// Built by componentize-js (see `cargo xtask build`, or
// docs/plugin-authoring.md for the commands).

import { log } from 'dataplane:handler/host@0.1.0';

const WINDOW_SECONDS = 60;

// iproute2's /etc/iproute2/rt_protos names.
const PROTOCOLS = new Map([
  [0, 'unspec'], [1, 'redirect'], [2, 'kernel'], [3, 'boot'], [4, 'static'],
  [8, 'gated'], [9, 'ra'], [10, 'mrt'], [11, 'zebra'], [12, 'bird'],
  [13, 'dnrouted'], [14, 'xorp'], [15, 'ntk'], [16, 'dhcp'], [18, 'keepalived'],
  [42, 'babel'], [99, 'openr'], [186, 'bgp'], [187, 'isis'], [188, 'ospf'],
  [189, 'rip'], [192, 'eigrp'],
]);

function protocolName(protocol) {
  return PROTOCOLS.get(protocol) ?? String(protocol);
}

// One slot per second of the window: the second it holds and, per
// (table, protocol) key, [adds, dels]. A slot from an older second is
// cleared when its index comes round again.
const slots = Array.from({ length: WINDOW_SECONDS }, () => ({ second: -1, counts: new Map() }));
let syncing = false;
let syncs = 0;
let unexpected = 0;

function slotFor(second) {
  const slot = slots[second % WINDOW_SECONDS];
  if (slot.second !== second) {
    slot.second = second;
    slot.counts.clear();
  }
  return slot;
}

// A (table, protocol) pair as one number, exact in a double (a u32 table
// times 256): no string is built per event.
function count(slot, route, column) {
  const key = route.table * 256 + route.protocol;
  let pair = slot.counts.get(key);
  if (pair === undefined) {
    pair = [0, 0];
    slot.counts.set(key, pair);
  }
  pair[column] += 1;
}

function add(into, name, pair) {
  const row = into[name] ?? (into[name] = { adds: 0, dels: 0 });
  row.adds += pair[0];
  row.dels += pair[1];
}

export const handler = {
  describe() {
    return { name: 'churn', version: '0.1.0', mpSafe: true, kinds: ['route'] };
  },

  init(config) {
    if (config.trim() !== '') {
      throw `churn takes no config, got ${JSON.stringify(config)}`;
    }
    log('debug', `counting route churn over ${WINDOW_SECONDS} s`);
  },

  handle(events) {
    // One clock read per batch: a batch is delivered within milliseconds.
    const slot = slotFor(Math.floor(Date.now() / 1000));
    for (const event of events) {
      switch (event.tag) {
        case 'route-add':
          if (!syncing) count(slot, event.val, 0);
          break;
        case 'route-del':
          if (!syncing) count(slot, event.val, 1);
          break;
        case 'sync-begin':
          if (event.val === 'route') syncing = true;
          else unexpected += 1;
          break;
        case 'sync-end':
          if (event.val === 'route' && syncing) {
            syncing = false;
            syncs += 1;
          } else {
            unexpected += 1;
          }
          break;
        default:
          unexpected += 1;
      }
    }
  },

  query(request) {
    if (request.trim() !== '' && request.trim() !== '{}') {
      throw 'churn answers an empty request (or {}) only';
    }
    const now = Math.floor(Date.now() / 1000);
    const answer = {
      window_seconds: WINDOW_SECONDS,
      by_protocol: {},
      by_table: {},
      total: { adds: 0, dels: 0 },
      syncs,
      unexpected,
    };
    for (const slot of slots) {
      if (slot.second < 0 || now - slot.second >= WINDOW_SECONDS) continue;
      for (const [key, pair] of slot.counts) {
        const table = Math.floor(key / 256);
        add(answer.by_protocol, protocolName(key % 256), pair);
        add(answer.by_table, String(table), pair);
        answer.total.adds += pair[0];
        answer.total.dels += pair[1];
      }
    }
    return JSON.stringify(answer);
  },
};
