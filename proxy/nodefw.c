// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Which netfilter interface the node's other components write, looked at once at start:
 * the legacy x_tables (what kproxyd's iptables, ipvs and userspace modes program) or
 * nf_tables through iptables-nft. Kubelet leaves a hint chain (KUBE-IPTABLES-HINT,
 * KUBE-KUBELET-CANARY) in the mangle table of the interface it uses; without one, the
 * interface holding more rules wins, as the iptables wrapper of kube-proxy's image
 * decides. Rules of ours in legacy tables while the node's live in nf_tables work, but
 * two interfaces evaluate independently and an operator looking with one tool misses the
 * other's rules: kproxyd says so, and names the way out.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4/ip_tables.h>

#include "kpd.h"

struct walk {
	bool hint;			/* a kubelet hint chain in an nf_tables mangle table */
	unsigned rules;			/* rules in iptables-nft's tables (ip, ip6) */
};

static bool xt_table(const char *name)
{
	static const char *const names[] = { "filter", "nat", "mangle", "raw", "security" };

	for (size_t i = 0; i < KP_ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	/* NFTA_CHAIN_TABLE/NAME and NFTA_RULE_TABLE/CHAIN share numbers 1 and 2 */
	if (type == NFTA_CHAIN_TABLE || type == NFTA_CHAIN_NAME) {
		if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
			return MNL_CB_ERROR;
		tb[type] = a;
	}
	return MNL_CB_OK;
}

static int msg_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[NFTA_CHAIN_NAME + 1] = { 0 };
	const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	struct walk *w = data;
	const char *table, *name;

	if (mnl_attr_parse(nlh, sizeof(*g), attr_cb, tb) < 0 || !tb[NFTA_CHAIN_TABLE] ||
	    !tb[NFTA_CHAIN_NAME])
		return MNL_CB_OK;
	if (g->nfgen_family != NFPROTO_IPV4 && g->nfgen_family != NFPROTO_IPV6)
		return MNL_CB_OK;
	table = mnl_attr_get_str(tb[NFTA_CHAIN_TABLE]);
	name = mnl_attr_get_str(tb[NFTA_CHAIN_NAME]);
	if ((nlh->nlmsg_type & 0xff) == NFT_MSG_NEWRULE) {
		w->rules += xt_table(table);
		return MNL_CB_OK;
	}
	if (!strcmp(table, "mangle") && (!strcmp(name, "KUBE-IPTABLES-HINT") ||
					 !strcmp(name, "KUBE-KUBELET-CANARY")))
		w->hint = true;
	return MNL_CB_OK;
}

/* Dumps nf_tables' chains or rules (@msg) of every family into @w. 0 or -errno. */
static int nft_dump(struct mnl_socket *nl, uint16_t msg, struct walk *w)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *g;
	unsigned seq = (unsigned)time(NULL) + msg, portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int r = MNL_CB_OK;

	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | msg;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = NFPROTO_UNSPEC;
	g->version = NFNETLINK_V0;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	while (r > MNL_CB_STOP && (n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0)
		r = mnl_cb_run(buf, (size_t)n, seq, portid, msg_cb, w);
	return r < 0 ? -errno : 0;
}

/* Whether the legacy table @name is there already (asking the kernel for one that is not
 * would load it: the node would get an empty mangle table it did not have). */
static bool legacy_loaded(const char *name)
{
	char line[64];
	bool found = false;
	FILE *f = fopen("/proc/net/ip_tables_names", "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = !strncmp(line, name, strlen(name)) && line[strlen(name)] == '\n';
	if (f)
		fclose(f);
	return found;
}

/* The legacy tables' entries beyond their bare built-in chains; -errno when the kernel
 * has no legacy ip_tables at all. nat and filter are asked for always (the legacy modes
 * load them anyway), the others only when they exist. */
static long legacy_rules(void)
{
	static const char *const tables[] = { "filter", "nat", "mangle", "raw" };
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	long total = 0;
	bool any = false;

	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < KP_ARRAY_SIZE(tables); i++) {
		struct ipt_getinfo info = { 0 };
		socklen_t len = sizeof(info);
		unsigned hooks = 0;

		if (i >= 2 && !legacy_loaded(tables[i]))
			continue;
		snprintf(info.name, sizeof(info.name), "%s", tables[i]);
		if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_INFO, &info, &len) < 0) {
			if (errno == ENOPROTOOPT) {	/* no legacy ip_tables in this kernel */
				close(fd);
				return -ENOPROTOOPT;
			}
			continue;
		}
		any = true;
		for (int h = 0; h < NF_INET_NUMHOOKS; h++)
			hooks += !!(info.valid_hooks & (1u << h));
		/* a bare table: one policy per built-in chain and the closing ERROR entry */
		total += (long)info.num_entries - hooks - 1;
	}
	close(fd);
	return any ? total : 0;
}

void kpd_nodefw_check(struct kpd_nodefw *fw)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	struct walk w = { 0 };
	long legacy = legacy_rules();

	memset(fw, 0, sizeof(*fw));
	fw->legacy_missing = legacy == -ENOPROTOOPT;
	fw->legacy_rules = legacy > 0 ? (unsigned long)legacy : 0;
	if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == 0 &&
	    nft_dump(nl, NFT_MSG_GETCHAIN, &w) == 0 && nft_dump(nl, NFT_MSG_GETRULE, &w) == 0) {
		fw->nft_checked = true;
		fw->nft_hint = w.hint;
		fw->nft_rules = w.rules;
	}
	if (nl)
		mnl_socket_close(nl);
	fw->node_uses_nft = fw->nft_checked && (fw->nft_hint || fw->nft_rules > fw->legacy_rules);
	snprintf(fw->backend, sizeof(fw->backend), "%s",
		 fw->legacy_missing ? "nft" : !fw->nft_checked ? "unknown" :
		 fw->node_uses_nft ? "nft" : "legacy");
}
