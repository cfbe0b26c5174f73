// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The node's NodePort addresses, as kube-proxy takes --nodeport-addresses: a family with
 * no range of its own (or with 0.0.0.0/0, ::/0) serves NodePorts on every local address;
 * the others on the local addresses inside their ranges; "primary" is the node's primary
 * address of each family. Addresses come and go: an rtnetlink subscription to address
 * changes makes kproxyd read them again, and a changed set goes to the library (the next
 * sync's NodePort frontends) and to the health-check node ports.
 *
 * What "every local address" means depends on the data plane, as in kube-proxy: iptables
 * and userspace match any local destination (one frontend on 0.0.0.0 or ::, see
 * kp_ctx_set_nodeport_any_local()), and are handed the addresses too (the iptables
 * firewall chains check source ranges against them); ipvs needs a virtual server per
 * address: every address but loopback, IPv6 link-local and kube-ipvs0's.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

#include "kpd.h"

#define MAX_CIDRS 16
#define MAX_ADDRS 256

struct kpd_nodeaddrs {
	char mode[16];			/* the data plane's name */
	bool primary;			/* "primary": the ranges are found at start */
	struct kp_cidr nets[MAX_CIDRS];
	size_t n_nets;
	bool all[2];			/* IPv4, IPv6: every local address */
	struct mnl_socket *nl;		/* address changes, or NULL */
	struct kp_addr addrs[MAX_ADDRS];	/* as last handed over */
	size_t n_addrs;
	bool handed;			/* to the library */
	bool hc_handed;			/* to the health-check node ports */
};

static int fam(int family)
{
	return family == AF_INET6;
}

/* The families' "every address" flags from the ranges (kube-proxy's NodePortAddresses). */
static void match_all(struct kpd_nodeaddrs *na)
{
	bool some[2] = { false, false };

	na->all[0] = na->all[1] = false;
	for (size_t i = 0; i < na->n_nets; i++) {
		some[fam(na->nets[i].addr.family)] = true;
		na->all[fam(na->nets[i].addr.family)] |= na->nets[i].prefix == 0;
	}
	for (int f = 0; f < 2; f++)
		na->all[f] |= !some[f];
}

static int parse_cidrs(struct kpd_nodeaddrs *na, const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct kp_cidr *c = &na->nets[na->n_nets];
		char *slash = strchr(tok, '/');
		unsigned prefix;

		if (na->n_nets == MAX_CIDRS || !slash) {
			r = -EINVAL;
			break;
		}
		*slash = '\0';
		if (kp_addr_from_str(tok, &c->addr) < 0 || sscanf(slash + 1, "%u", &prefix) != 1 ||
		    prefix > (c->addr.family == AF_INET ? 32u : 128u)) {
			r = -EINVAL;
			break;
		}
		c->prefix = (uint8_t)prefix;
		na->n_nets++;
	}
	free(copy);
	return r;
}

int kpd_nodeaddrs_new(const char *spec, const char *mode, struct kpd_nodeaddrs **ret)
{
	struct kpd_nodeaddrs *na = calloc(1, sizeof(*na));

	if (!na)
		return -ENOMEM;
	snprintf(na->mode, sizeof(na->mode), "%s", mode);
	if (spec && !strcmp(spec, "primary")) {
		na->primary = true;
	} else if (spec && *spec && parse_cidrs(na, spec) < 0) {
		fprintf(stderr, "kproxyd: --nodeport-addresses: \"%s\" is not \"primary\" nor a "
			"comma-separated list of at most %d CIDRs\n", spec, MAX_CIDRS);
		free(na);
		return -EINVAL;
	}
	match_all(na);
	*ret = na;
	return 0;
}

/* The interface of the default route of @family (/proc/net/route, /proc/net/ipv6_route),
 * into @name (IFNAMSIZ bytes); false when there is none. */
static bool default_route_dev(int family, char *name)
{
	FILE *f = fopen(family == AF_INET ? "/proc/net/route" : "/proc/net/ipv6_route", "r");
	char line[512], dev[IF_NAMESIZE], dst[64], plen[8];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (family == AF_INET) {
			found = sscanf(line, "%15s %63s", dev, dst) == 2 && !strcmp(dst, "00000000");
		} else {
			/* dst plen src splen next-hop metric refcnt use flags dev */
			found = sscanf(line, "%63s %7s %*s %*s %*s %*s %*s %*s %*s %15s", dst, plen,
				       dev) == 3 && !strcmp(plen, "00") &&
				strspn(dst, "0") == strlen(dst) && strcmp(dev, "lo");
		}
	}
	fclose(f);
	if (found)
		memcpy(name, dev, IF_NAMESIZE);
	return found;
}

static bool from_ifaddr(const struct ifaddrs *i, struct kp_addr *a)
{
	if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
		return false;
	memset(a, 0, sizeof(*a));
	if (i->ifa_addr->sa_family == AF_INET) {
		a->family = AF_INET;
		a->v4 = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
		return true;
	}
	if (i->ifa_addr->sa_family == AF_INET6) {
		a->family = AF_INET6;
		a->v6 = ((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		return !IN6_IS_ADDR_LINKLOCAL(&a->v6);
	}
	return false;
}

/*
 * "primary": kube-proxy takes the node's addresses from its Node object (or
 * --bind-address); kproxyd does not read the Node's addresses: --bind-address when given,
 * else the first address of each family on the default route's interface. Said once.
 */
static void find_primary(struct kpd_nodeaddrs *na)
{
	const char *bind = kpd_get("bind-address");
	struct ifaddrs *ifa = NULL;
	struct kp_addr a;
	char dev[2][IF_NAMESIZE], s[KP_ADDR_STRLEN];

	na->primary = false;
	if (bind && kp_addr_from_str(bind, &a) == 0 && !kp_addr_is_unspecified(&a)) {
		na->nets[na->n_nets++] = (struct kp_cidr){ .addr = a,
			.prefix = a.family == AF_INET ? 32 : 128 };
		kpd_info("--nodeport-addresses primary: %s (--bind-address)",
			 kp_addr_to_str(&a, s, sizeof(s)));
		match_all(na);
		return;
	}
	for (int f = 0; f < 2; f++)
		if (!default_route_dev(f ? AF_INET6 : AF_INET, dev[f]))
			dev[f][0] = '\0';
	if (getifaddrs(&ifa) < 0)
		ifa = NULL;
	for (int f = 0; f < 2; f++) {
		for (struct ifaddrs *i = ifa; i && dev[f][0]; i = i->ifa_next) {
			if (strcmp(i->ifa_name, dev[f]) || !from_ifaddr(i, &a) || fam(a.family) != f)
				continue;
			na->nets[na->n_nets++] = (struct kp_cidr){ .addr = a,
				.prefix = a.family == AF_INET ? 32 : 128 };
			kpd_info("--nodeport-addresses primary: %s, the address of %s, the default "
				 "route's interface (kproxyd does not read the Node object's "
				 "addresses)", kp_addr_to_str(&a, s, sizeof(s)), dev[f]);
			break;
		}
	}
	if (ifa)
		freeifaddrs(ifa);
	if (!na->n_nets)
		kpd_warn("--nodeport-addresses primary: no default route: NodePorts on every "
			 "local address");
	match_all(na);
}

int kpd_nodeaddrs_follow(struct kpd_nodeaddrs *na)
{
	if (na->primary)
		find_primary(na);
	if (!strcmp(na->mode, "dpdk"))
		return -1;	/* the DPDK ports' addresses: fixed at start */
	na->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!na->nl)
		return -errno;
	if (mnl_socket_bind(na->nl, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
			    MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;

		mnl_socket_close(na->nl);
		na->nl = NULL;
		return r;
	}
	return mnl_socket_get_fd(na->nl);
}

/* Whether @a serves NodePorts in this mode: the address filter of kube-proxy's mode. */
static bool wanted(const struct kpd_nodeaddrs *na, const struct ifaddrs *i,
		   const struct kp_addr *a)
{
	bool ipvs = !strcmp(na->mode, "ipvs");
	bool loopback = (i->ifa_flags & IFF_LOOPBACK) ||
			(a->family == AF_INET && (ntohl(a->v4.s_addr) >> 24) == 127);

	if (na->all[fam(a->family)])
		return !loopback && !(ipvs && !strcmp(i->ifa_name, "kube-ipvs0"));
	for (size_t k = 0; k < na->n_nets; k++)
		if (kp_addr_in_prefix(a, &na->nets[k].addr, na->nets[k].prefix))
			return !(ipvs && loopback);
	return false;
}

static int cmp_addr(const void *x, const void *y)
{
	const struct kp_addr *a = x, *b = y;

	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	return a->family == AF_INET ? memcmp(&a->v4, &b->v4, 4) : memcmp(&a->v6, &b->v6, 16);
}

/* The addresses of this mode now, sorted; 0 or -errno. */
static int read_addrs(const struct kpd_nodeaddrs *na, struct kp_addr *v, size_t *ret_n)
{
	struct ifaddrs *ifa;
	size_t n = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (struct ifaddrs *i = ifa; i && n < MAX_ADDRS; i = i->ifa_next) {
		struct kp_addr a;
		bool dup = false;

		if (!from_ifaddr(i, &a) || !wanted(na, i, &a))
			continue;
		for (size_t k = 0; k < n && !dup; k++)
			dup = kp_addr_equal(&v[k], &a);
		if (!dup)
			v[n++] = a;
	}
	freeifaddrs(ifa);
	qsort(v, n, sizeof(*v), cmp_addr);
	*ret_n = n;
	return 0;
}

/* dpdk: the addresses of the ports that face clients serve NodePorts (the kernel's
 * interfaces are not where the traffic is). */
static void dpdk_addrs(const struct kpd_nodeaddrs *na, struct kp_addr *v, size_t *ret_n)
{
	size_t n = 0, n_ports;
	const char *const *ports = kpd_get_list("dpdk-port", &n_ports);

	for (size_t i = 0; i < n_ports; i++) {
		if (strstr(ports[i], "role=pod"))
			continue;
		/* each "ip=" entry of the spec, one per family */
		for (const char *t = ports[i]; *t && n < 8; t += strcspn(t, ";"), t += *t == ';') {
			char buf[64];
			struct kp_addr a;
			bool in = !na->n_nets;

			if (strncmp(t, "ip=", 3))
				continue;
			snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(t + 3, "/;"), t + 3);
			if (kp_addr_from_str(buf, &a) < 0)
				continue;
			for (size_t k = 0; k < na->n_nets && !in; k++)
				in = kp_addr_in_prefix(&a, &na->nets[k].addr, na->nets[k].prefix);
			if (in)
				v[n++] = a;
		}
	}
	*ret_n = n;
}

/* Empties the subscription's queue (an overflow only means: read them all again). */
static void drain(struct kpd_nodeaddrs *na)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];

	while (na->nl && (mnl_socket_recvfrom(na->nl, buf, sizeof(buf)) > 0 || errno == ENOBUFS))
		;
}

static void say(const struct kpd_nodeaddrs *na, const struct kp_addr *v, size_t n)
{
	char line[1024] = "", s[KP_ADDR_STRLEN];
	size_t len = 0;

	for (size_t i = 0; i < n && len < sizeof(line) - KP_ADDR_STRLEN - 2; i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s", i ? " " : "",
					kp_addr_to_str(&v[i], s, sizeof(s)));
	kpd_info("NodePort addresses%s%s: %s%s", na->all[0] ? " (IPv4: every local address)" : "",
		 na->all[1] ? " (IPv6: every local address)" : "", n ? "" : "none listed", line);
}

int kpd_nodeaddrs_update(struct kpd_nodeaddrs *na, struct kp_ctx *ctx, struct kpd_hc *hc)
{
	struct kp_addr v[MAX_ADDRS];
	bool any = !strcmp(na->mode, "iptables") || !strcmp(na->mode, "userspace") ||
		   !strcmp(na->mode, "nftables") || !strcmp(na->mode, "dryrun");
	size_t n = 0;
	int r;

	drain(na);
	if (!strcmp(na->mode, "dpdk"))
		dpdk_addrs(na, v, &n);
	else if ((r = read_addrs(na, v, &n)) < 0)
		return r;
	if (na->handed && n == na->n_addrs && !memcmp(v, na->addrs, n * sizeof(*v))) {
		if (hc && !na->hc_handed)
			kpd_hc_set_addrs(hc, na->all, v, n);
		na->hc_handed |= hc != NULL;
		return 0;
	}
	for (int f = 0; f < 2; f++)
		kp_ctx_set_nodeport_any_local(ctx, f ? AF_INET6 : AF_INET, any && na->all[f]);
	r = kp_ctx_set_nodeport_addrs(ctx, v, n);
	if (r < 0)
		return r;
	memcpy(na->addrs, v, n * sizeof(*v));
	na->n_addrs = n;
	na->handed = true;
	say(na, v, n);
	if (hc)
		kpd_hc_set_addrs(hc, na->all, v, n);
	na->hc_handed |= hc != NULL;
	return 1;
}

void kpd_nodeaddrs_free(struct kpd_nodeaddrs *na)
{
	if (!na)
		return;
	if (na->nl)
		mnl_socket_close(na->nl);
	free(na);
}
