// SPDX-License-Identifier: GPL-2.0
//
// xdp-router: an IPv4 and IPv6 router in XDP, forwarding from BPF maps
// that dphost's `xdp-fib` plugin programs from the kernel's routes,
// neighbours and links. The program only reads the maps; it never
// learns anything itself.
//
// For each packet, in order (the first that applies decides):
//   not IPv4 or IPv6, or too short for its headers    -> the kernel (PASS)
//   IPv4 with options, IPv6 with a hop-by-hop header   -> the kernel
//   multicast, broadcast or link-local destination      -> the kernel
//   TTL or hop limit 1 or less                          -> the kernel (it answers ICMP)
//   no route (longest-prefix match in routes4/routes6)  -> the kernel
//   a route to pass (group 0: local, blackhole, ...)    -> the kernel
//   the route's hops: one chosen by a hash of the flow (ECMP)
//   no port entry for the hop's interface               -> the kernel
//   no neighbour for (interface, gateway or destination)-> the kernel (it resolves)
//   larger than the egress link's MTU                   -> the kernel (it fragments,
//                                                          or answers ICMP)
//   else: rewrite both MACs, decrement TTL (IPv4 checksum updated
//   incrementally) or hop limit, and redirect to the port (devmap `tx`).
// Each outcome is counted in the per-CPU array `stats`.
//
// Built by `cargo xtask build` with Debian's clang-14 and libbpf headers:
//   clang-14 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
//       -c xdp_router.c -o xdp_router.o

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_HOPS 8

// The maps' layouts; dphost's xdp-fib plugin writes them
// (plugins/xdp-fib/src/maps.rs holds the same layouts).

struct lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

// A route: the group of hops it forwards through; 0 passes the packet to
// the kernel (local, broadcast, blackhole, unreachable, prohibit routes).
struct route {
	__u32 group;
};

// One hop: the egress interface, and the gateway (all zero: the route is
// connected, and the destination itself is the neighbour).
struct hop {
	__u32 ifindex;
	__u8 gateway[16];
};

struct group {
	__u32 count;
	struct hop hops[MAX_HOPS];
};

struct neigh4_key {
	__u32 ifindex;
	__u8 addr[4];
};

struct neigh6_key {
	__u32 ifindex;
	__u8 addr[16];
};

struct mac {
	__u8 addr[6];
	__u8 pad[2];
};

enum outcome {
	FORWARDED,
	PASS_NOT_IP,
	PASS_HEADER,
	PASS_SPECIAL_DESTINATION,
	PASS_TTL,
	PASS_NO_ROUTE,
	PASS_ROUTE,
	PASS_NO_PORT,
	PASS_NO_NEIGHBOUR,
	PASS_TOO_BIG,
	OUTCOMES,
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2000000);
	__type(key, struct lpm4_key);
	__type(value, struct route);
} routes4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 500000);
	__type(key, struct lpm6_key);
	__type(value, struct route);
} routes6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct group);
} groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct neigh4_key);
	__type(value, struct mac);
} neigh4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct neigh6_key);
	__type(value, struct mac);
} neigh6 SEC(".maps");

// The router's own ports: ifindex -> its MAC (the source of what it sends).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct mac);
} ports SEC(".maps");

// Redirect targets: ifindex -> the kernel's devmap value (the egress
// ifindex, and a program fd of 0 for none).
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OUTCOMES);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int count(enum outcome outcome, int action)
{
	__u32 key = outcome;
	__u64 *n = bpf_map_lookup_elem(&stats, &key);

	if (n)
		*n += 1;
	return action;
}

static __always_inline __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 16);
}

// The flow's ports, when the packet has them (not a later fragment).
static __always_inline __u32 ports_of(void *l4, void *end, __u8 proto)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		// Source and destination port lead both headers.
		__u32 *p = l4;

		if ((void *)(p + 1) <= end)
			return *p;
	}
	return 0;
}

// Chooses the hop, finds its neighbour and port, rewrites the frame's MACs
// and redirects it; `gateway` of the hop zero means the destination.
static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth, __u32 group_id,
				   __u32 hash, const __u8 *dst, int v6)
{
	struct group *group;
	struct hop *hop;
	struct mac *port, *neigh;
	__u32 ifindex, i;

	if (group_id == 0)
		return count(PASS_ROUTE, XDP_PASS);
	group = bpf_map_lookup_elem(&groups, &group_id);
	if (!group || group->count == 0)
		return count(PASS_NO_ROUTE, XDP_PASS);
	i = hash % group->count;
	if (i >= MAX_HOPS)
		return count(PASS_NO_ROUTE, XDP_PASS);
	hop = &group->hops[i];
	ifindex = hop->ifindex;
	port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port)
		return count(PASS_NO_PORT, XDP_PASS);

	int connected = 1;
#pragma unroll
	for (int b = 0; b < 16; b++)
		if (hop->gateway[b])
			connected = 0;
	const __u8 *next = connected ? dst : hop->gateway;
	if (v6) {
		struct neigh6_key key = { .ifindex = ifindex };

		__builtin_memcpy(key.addr, next, 16);
		neigh = bpf_map_lookup_elem(&neigh6, &key);
	} else {
		struct neigh4_key key = { .ifindex = ifindex };

		__builtin_memcpy(key.addr, next, 4);
		neigh = bpf_map_lookup_elem(&neigh4, &key);
	}
	if (!neigh)
		return count(PASS_NO_NEIGHBOUR, XDP_PASS);
	// Too big for the egress link: the kernel fragments it or answers
	// "fragmentation needed" (path MTU discovery depends on it).
	__u32 mtu_len = 0;
	long fits = bpf_check_mtu(ctx, ifindex, &mtu_len, 0, 0);

	if (fits > 0)
		return count(PASS_TOO_BIG, XDP_PASS);
	if (fits < 0)
		return count(PASS_NO_PORT, XDP_PASS);

	// Not in `tx`: the kernel, as for any interface we cannot send on,
	// with the frame untouched. The redirect itself happens once the
	// program returns, so the frame is rewritten after it is decided.
	long action = bpf_redirect_map(&tx, ifindex, XDP_PASS);

	if (action != XDP_REDIRECT)
		return count(PASS_NO_PORT, XDP_PASS);
	__builtin_memcpy(eth->h_dest, neigh->addr, ETH_ALEN);
	__builtin_memcpy(eth->h_source, port->addr, ETH_ALEN);
	return count(FORWARDED, XDP_REDIRECT);
}

static __always_inline int route4(struct xdp_md *ctx, struct ethhdr *eth, void *end)
{
	struct iphdr *ip = (void *)(eth + 1);
	struct lpm4_key key = { .prefixlen = 32 };
	struct route *route;
	__u32 hash, check;

	if ((void *)(ip + 1) > end)
		return count(PASS_HEADER, XDP_PASS);
	if (ip->ihl != 5 || ip->version != 4)
		return count(PASS_HEADER, XDP_PASS);
	__u8 first = ((__u8 *)&ip->daddr)[0];

	// Multicast, limited broadcast, loopback, this network, link-local.
	if (first >= 224 || first == 127 || first == 0 ||
	    (first == 169 && ((__u8 *)&ip->daddr)[1] == 254))
		return count(PASS_SPECIAL_DESTINATION, XDP_PASS);
	if (ip->ttl <= 1)
		return count(PASS_TTL, XDP_PASS);
	__builtin_memcpy(key.addr, &ip->daddr, 4);
	route = bpf_map_lookup_elem(&routes4, &key);
	if (!route)
		return count(PASS_NO_ROUTE, XDP_PASS);

	hash = mix(mix(0, ip->saddr), ip->daddr);
	hash = mix(hash, ip->protocol);
	// A fragment's ports are in its first piece only: the pieces of one
	// packet hash alike without them.
	if (!(ip->frag_off & bpf_htons(0x3fff)))
		hash = mix(hash, ports_of(ip + 1, end, ip->protocol));

	int action = forward(ctx, eth, route->group, hash, key.addr, 0);

	if (action == XDP_REDIRECT) {
		// RFC 1624 incremental update, as the kernel's ip_decrease_ttl.
		check = ip->check;
		check += bpf_htons(0x0100);
		ip->check = (__u16)(check + (check >= 0xFFFF));
		ip->ttl--;
	}
	return action;
}

static __always_inline int route6(struct xdp_md *ctx, struct ethhdr *eth, void *end)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct lpm6_key key = { .prefixlen = 128 };
	struct route *route;
	__u32 hash = 0;

	if ((void *)(ip6 + 1) > end)
		return count(PASS_HEADER, XDP_PASS);
	if (ip6->nexthdr == 0 /* hop-by-hop options */)
		return count(PASS_HEADER, XDP_PASS);
	__u8 first = ip6->daddr.in6_u.u6_addr8[0];
	__u8 second = ip6->daddr.in6_u.u6_addr8[1];

	// Multicast, link-local.
	if (first == 0xff || (first == 0xfe && (second & 0xc0) == 0x80))
		return count(PASS_SPECIAL_DESTINATION, XDP_PASS);
	if (ip6->hop_limit <= 1)
		return count(PASS_TTL, XDP_PASS);
	__builtin_memcpy(key.addr, ip6->daddr.in6_u.u6_addr8, 16);
	route = bpf_map_lookup_elem(&routes6, &key);
	if (!route)
		return count(PASS_NO_ROUTE, XDP_PASS);

#pragma unroll
	for (int w = 0; w < 4; w++) {
		hash = mix(hash, ip6->saddr.in6_u.u6_addr32[w]);
		hash = mix(hash, ip6->daddr.in6_u.u6_addr32[w]);
	}
	hash = mix(hash, ip6->nexthdr);
	// The flow label's 20 bits, not the traffic class sharing its first
	// byte: an ECN mark on the way must not move a flow to another hop.
	hash = mix(hash, (ip6->flow_lbl[0] & 0x0f) << 16 | ip6->flow_lbl[1] << 8 | ip6->flow_lbl[2]);
	hash = mix(hash, ports_of(ip6 + 1, end, ip6->nexthdr));

	int action = forward(ctx, eth, route->group, hash, key.addr, 1);

	if (action == XDP_REDIRECT)
		ip6->hop_limit--;
	return action;
}

SEC("xdp")
int xdp_router(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return count(PASS_HEADER, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return route4(ctx, eth, end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return route6(ctx, eth, end);
	return count(PASS_NOT_IP, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
