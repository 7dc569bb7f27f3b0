/* Example plugin `linkstate`, in C: the administrative and operational state
 * of every link, and how often each has flapped.
 *
 * It subscribes to links only and is mp-safe: it touches nothing but its own
 * memory, so its calls may run beside other plugins' calls.
 *
 * A flap is the link leaving the operational state `up` (a carrier loss, an
 * `ip link set down`, its veth peer going down); coming back up is not
 * counted again. Changes seen through a resync count too: the plugin
 * compares each re-added link with what it held.
 *
 * `query` with an empty request (or "{}") answers
 *   {"links":[{"ifindex":1,"name":"lo","admin":"up","oper":"unknown",
 *              "flaps":0},...],"syncs":1,"unexpected":0}
 * with the links in ifindex order; a request holding a link name answers
 * that link's object alone. `unexpected` counts events of kinds the plugin
 * did not ask for, which the host must never send.
 *
 * Built without a libc (rt.c has the allocator): see `cargo xtask build`
 * or docs/plugin-authoring.md for the commands. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

typedef dataplane_handler_types_link_t link_t;
typedef dataplane_handler_types_event_t event_t;

/* A kernel link name is at most 15 bytes (IFNAMSIZ - 1). */
#define NAME_MAX_LEN 15

typedef struct {
    uint32_t ifindex;
    uint8_t name_len;
    char name[NAME_MAX_LEN];
    bool admin_up;
    uint8_t oper;
    /* Not re-added since the current sync began. */
    bool stale;
    uint32_t flaps;
} entry_t;

/* Links sorted by ifindex: the kernel dumps them in that order, so a sync
 * appends. */
static entry_t *entries;
static size_t count, capacity;
static uint64_t syncs, unexpected;
static bool syncing;

/* The position of `ifindex`, or where it would go. */
static size_t find(uint32_t ifindex, bool *found) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entries[mid].ifindex < ifindex) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < count && entries[lo].ifindex == ifindex;
    return lo;
}

static void link_add(const link_t *l) {
    bool found;
    size_t at = find(l->ifindex, &found);
    if (!found) {
        if (count == capacity) {
            size_t grown = capacity ? capacity * 2 : 16;
            entry_t *more = realloc(entries, grown * sizeof *entries);
            if (more == NULL) {
                abort();
            }
            entries = more;
            capacity = grown;
        }
        memmove(&entries[at + 1], &entries[at], (count - at) * sizeof *entries);
        count++;
        memset(&entries[at], 0, sizeof *entries);
        entries[at].ifindex = l->ifindex;
    } else if (entries[at].oper == DATAPLANE_HANDLER_TYPES_OPER_STATE_UP &&
               l->oper_state != DATAPLANE_HANDLER_TYPES_OPER_STATE_UP) {
        entries[at].flaps++;
    }
    entry_t *e = &entries[at];
    e->name_len = l->name.len < NAME_MAX_LEN ? (uint8_t)l->name.len : NAME_MAX_LEN;
    memcpy(e->name, l->name.ptr, e->name_len);
    e->admin_up = l->admin_up;
    e->oper = l->oper_state;
    e->stale = false;
}

static void link_del(uint32_t ifindex) {
    bool found;
    size_t at = find(ifindex, &found);
    if (found) {
        memmove(&entries[at], &entries[at + 1], (count - at - 1) * sizeof *entries);
        count--;
    }
}

static void sync_begin(void) {
    for (size_t i = 0; i < count; i++) {
        entries[i].stale = true;
    }
    syncing = true;
}

/* Drops every link the sync did not re-add. */
static void sync_end(void) {
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (!entries[i].stale) {
            entries[kept++] = entries[i];
        }
    }
    count = kept;
    syncing = false;
    syncs++;
}

void exports_dataplane_handler_handler_describe(exports_dataplane_handler_handler_plugin_info_t *ret) {
    plugin_string_dup(&ret->name, "linkstate");
    plugin_string_dup(&ret->version, "0.1.0");
    ret->mp_safe = true;
    /* The bindings free the list after the call returns. */
    ret->kinds.len = 1;
    ret->kinds.ptr = malloc(sizeof *ret->kinds.ptr);
    if (ret->kinds.ptr == NULL) {
        abort();
    }
    ret->kinds.ptr[0] = DATAPLANE_HANDLER_TYPES_OBJECT_KIND_LINK;
}

bool exports_dataplane_handler_handler_init(plugin_string_t *config, plugin_string_t *err) {
    (void)err;
    plugin_string_free(config);
    return true;
}

void exports_dataplane_handler_handler_handle(exports_dataplane_handler_handler_list_event_t *events) {
    for (size_t i = 0; i < events->len; i++) {
        const event_t *ev = &events->ptr[i];
        switch (ev->tag) {
        case DATAPLANE_HANDLER_TYPES_EVENT_LINK_ADD:
            link_add(&ev->val.link_add);
            break;
        case DATAPLANE_HANDLER_TYPES_EVENT_LINK_DEL:
            link_del(ev->val.link_del.ifindex);
            break;
        case DATAPLANE_HANDLER_TYPES_EVENT_SYNC_BEGIN:
            if (ev->val.sync_begin == DATAPLANE_HANDLER_TYPES_OBJECT_KIND_LINK) {
                sync_begin();
            } else {
                unexpected++;
            }
            break;
        case DATAPLANE_HANDLER_TYPES_EVENT_SYNC_END:
            if (ev->val.sync_end == DATAPLANE_HANDLER_TYPES_OBJECT_KIND_LINK && syncing) {
                sync_end();
            } else {
                unexpected++;
            }
            break;
        default:
            unexpected++;
        }
    }
    /* The list and every string in it are ours to free. */
    exports_dataplane_handler_handler_list_event_free(events);
}

/* A growing output buffer for the JSON answer. */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n) {
            cap *= 2;
        }
        uint8_t *grown = realloc(o->ptr, cap);
        if (grown == NULL) {
            abort();
        }
        o->ptr = grown;
        o->cap = cap;
    }
    memcpy(o->ptr + o->len, s, n);
    o->len += n;
}

static void put_str(out_t *o, const char *s) {
    put(o, s, strlen(s));
}

static void put_u64(out_t *o, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, digits + sizeof digits - n, n);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void put_json_string(out_t *o, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(o, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(o, esc, 6);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
}

static const char *oper_name(uint8_t oper) {
    static const char *const names[] = {
        "unknown", "not-present", "down", "lower-layer-down", "testing", "dormant", "up",
    };
    return oper < sizeof names / sizeof names[0] ? names[oper] : "unknown";
}

static void put_link(out_t *o, const entry_t *e) {
    put_str(o, "{\"ifindex\":");
    put_u64(o, e->ifindex);
    put_str(o, ",\"name\":");
    put_json_string(o, e->name, e->name_len);
    put_str(o, ",\"admin\":");
    put_str(o, e->admin_up ? "\"up\"" : "\"down\"");
    put_str(o, ",\"oper\":\"");
    put_str(o, oper_name(e->oper));
    put_str(o, "\",\"flaps\":");
    put_u64(o, e->flaps);
    put_str(o, "}");
}

static bool is_all(const plugin_string_t *request) {
    return request->len == 0 || (request->len == 2 && memcmp(request->ptr, "{}", 2) == 0);
}

bool exports_dataplane_handler_handler_query(plugin_string_t *request, plugin_string_t *ret,
                                             plugin_string_t *err) {
    out_t o = {0};
    bool ok = true;
    if (is_all(request)) {
        put_str(&o, "{\"links\":[");
        for (size_t i = 0; i < count; i++) {
            if (i > 0) {
                put_str(&o, ",");
            }
            put_link(&o, &entries[i]);
        }
        put_str(&o, "],\"syncs\":");
        put_u64(&o, syncs);
        put_str(&o, ",\"unexpected\":");
        put_u64(&o, unexpected);
        put_str(&o, "}");
    } else {
        const entry_t *match = NULL;
        for (size_t i = 0; i < count && match == NULL; i++) {
            if (entries[i].name_len == request->len &&
                memcmp(entries[i].name, request->ptr, request->len) == 0) {
                match = &entries[i];
            }
        }
        if (match != NULL) {
            put_link(&o, match);
        } else {
            ok = false;
            put_str(&o, "no link named ");
            put_json_string(&o, (const char *)request->ptr, request->len);
        }
    }
    plugin_string_free(request);
    plugin_string_t answer = {o.ptr, o.len};
    if (ok) {
        *ret = answer;
    } else {
        *err = answer;
    }
    return ok;
}
