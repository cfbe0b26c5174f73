// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The load of tests/bench/run-dpdk-bench's kernel path: UDP datagrams of many flows sent
 * with sendmmsg() from one namespace, counted with recvmmsg() in another.
 *
 * "send" writes whole IPv4 packets on a raw socket (IPPROTO_RAW), or, with --ifname and
 * --dst-mac, whole Ethernet frames on a packet socket bound to that interface (no route
 * lookup, no qdisc: a cheaper sender), so each flow can have its own source address and
 * port without a socket of its own: flow id i goes from
 * 10.128.0.0 + i / 60000, port 1024 + i % 60000 (bench-dpdk's clients) to the VIP
 * BASE + i % SERVICES, port PORT, with a UDP checksum. The flows are taken in turn from
 * --start (0), FLOWS of them (wrapping), for SECONDS, or once each with --once (the pass
 * that makes them). It prints `sent=N seconds=S pps=P`.
 *
 * "recv" counts datagrams to PORT on any local address. It prints "ready" once bound, a
 * `count=N ns=T` line (CLOCK_MONOTONIC) on each SIGUSR1, and the last one on SIGTERM,
 * SIGINT or after LIMIT seconds (600), then exits: the caller takes the difference of two
 * lines as its window.
 *
 * Usage: udp-flood send [--once] [-d SECONDS] [-f FLOWS] [--start ID] [-c SERVICES]
 *                       [-b BATCH] [--ifname IF --dst-mac MAC] BASE PORT
 *        udp-flood recv PORT [LIMIT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_BASE 0x0a800000u		/* 10.128.0.0 */
#define CLIENT_PORTS 60000
#define PAYLOAD 18			/* 46-byte IP packets: 60-byte frames */
#define PKT (sizeof(struct iphdr) + sizeof(struct udphdr) + PAYLOAD)
#define ETH 14
#define MAX_BATCH 1024

static volatile sig_atomic_t report_now, stop_now;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t sum16(const void *p, size_t n, uint32_t s)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Flow @id's datagram, into @pkt; its destination into @to. */
static void build(uint8_t *pkt, struct sockaddr_in *to, uint32_t id, uint32_t base,
		  unsigned n_svc, uint16_t port)
{
	struct iphdr *ip = (struct iphdr *)pkt;
	struct udphdr *uh = (struct udphdr *)(ip + 1);
	uint32_t s;
	uint16_t c;

	memset(pkt, 0, PKT);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(PKT);
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->saddr = htonl(CLIENT_BASE + id / CLIENT_PORTS);
	ip->daddr = htonl(base + id % n_svc);
	uh->source = htons((uint16_t)(1024 + id % CLIENT_PORTS));
	uh->dest = htons(port);
	uh->len = htons(PKT - sizeof(*ip));
	/* pseudo header, then the datagram */
	s = sum16(&ip->saddr, 8, IPPROTO_UDP + (uint32_t)(PKT - sizeof(*ip)));
	c = fold(sum16(uh, PKT - sizeof(*ip), s));
	uh->check = htons(c ? c : 0xffff);
	ip->check = htons(fold(sum16(ip, sizeof(*ip), 0)));
	to->sin_family = AF_INET;
	to->sin_addr.s_addr = ip->daddr;
}

struct send_opts {
	double seconds;
	uint32_t flows, batch, start;
	unsigned n_svc;
	bool once;
	uint32_t base;
	uint16_t port;
	const char *ifname;		/* packet socket on it, NULL: raw IP socket */
	uint8_t dst_mac[6];
};

/* A packet socket bound to @o->ifname, its frames' Ethernet header in @eth; or -1. */
static int packet_socket(const struct send_opts *o, uint8_t *eth)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP) };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_PACKET, SOCK_RAW, 0), one = 1;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 || !(ll.sll_ifindex = (int)if_nametoindex(o->ifname)) ||
	    bind(fd, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	memcpy(eth, o->dst_mac, 6);
	memcpy(eth + 6, ifr.ifr_hwaddr.sa_data, 6);
	eth[12] = ETH_P_IP >> 8;
	eth[13] = ETH_P_IP & 0xff;
	return fd;
}

static int do_send(const struct send_opts *o)
{
	static uint8_t pkts[MAX_BATCH][PKT];
	static struct sockaddr_in to[MAX_BATCH];
	static struct iovec iov[MAX_BATCH][2];
	static struct mmsghdr msgs[MAX_BATCH];
	static uint8_t eth[ETH];
	uint64_t sent = 0, t0, end, t;
	uint32_t id = o->start % o->flows;
	int fd = o->ifname ? packet_socket(o, eth) : socket(AF_INET, SOCK_RAW, IPPROTO_RAW);

	if (fd < 0) {
		perror(o->ifname ? "udp-flood: packet socket" : "udp-flood: raw socket");
		return 1;
	}
	for (uint32_t i = 0; i < o->batch; i++) {
		struct msghdr *h = &msgs[i].msg_hdr;

		iov[i][0] = (struct iovec){ .iov_base = eth, .iov_len = ETH };
		iov[i][1] = (struct iovec){ .iov_base = pkts[i], .iov_len = PKT };
		if (o->ifname) {	/* the Ethernet header, then the packet */
			*h = (struct msghdr){ .msg_iov = iov[i], .msg_iovlen = 2 };
		} else {
			*h = (struct msghdr){ .msg_name = &to[i], .msg_namelen = sizeof(to[i]),
					      .msg_iov = &iov[i][1], .msg_iovlen = 1 };
		}
	}
	t0 = now_ns();
	end = t0 + (uint64_t)(o->seconds * 1e9);
	do {
		uint32_t n = o->batch, done = 0;

		if (o->once && o->flows - sent < n)
			n = (uint32_t)(o->flows - sent);
		for (uint32_t i = 0; i < n; i++)
			build(pkts[i], &to[i], (id + i) % o->flows, o->base, o->n_svc, o->port);
		while (done < n) {
			int r = sendmmsg(fd, msgs + done, n - done, 0);

			if (r < 0 && errno != ENOBUFS && errno != EINTR) {
				perror("udp-flood: sendmmsg");
				close(fd);
				return 1;
			}
			done += r > 0 ? (uint32_t)r : 0;
		}
		sent += n;
		id = (uint32_t)((id + n) % o->flows);
		t = now_ns();
	} while (o->once ? sent < o->flows : t < end);
	close(fd);
	printf("sent=%" PRIu64 " seconds=%.3f pps=%.0f\n", sent, (t - t0) / 1e9,
	       sent / ((t - t0) / 1e9));
	return 0;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		report_now = 1;
	else
		stop_now = 1;
}

static int do_recv(uint16_t port, unsigned limit)
{
	static char bufs[256][64];
	static struct iovec iov[256];
	static struct mmsghdr msgs[256];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: EINTR */
	int fd = socket(AF_INET, SOCK_DGRAM, 0), size = 64 << 20;
	uint64_t count = 0;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("udp-flood: bind");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	alarm(limit);
	for (int i = 0; i < 256; i++) {
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sizeof(bufs[i]) };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop_now) {
		int r = recvmmsg(fd, msgs, 256, MSG_WAITFORONE, NULL);

		if (r > 0)
			count += (uint64_t)r;
		else if (r < 0 && errno != EINTR)
			break;
		if (report_now) {
			report_now = 0;
			printf("count=%" PRIu64 " ns=%" PRIu64 "\n", count, now_ns());
			fflush(stdout);
		}
	}
	printf("count=%" PRIu64 " ns=%" PRIu64 "\n", count, now_ns());
	close(fd);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: udp-flood send [--once] [-d SECONDS] [-f FLOWS] [--start ID] "
		"[-c SERVICES] [-b BATCH] [--ifname IF --dst-mac MAC] BASE PORT\n"
		"       udp-flood recv PORT [LIMIT]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "once", no_argument, NULL, 'o' },
					      { "ifname", required_argument, NULL, 'i' },
					      { "dst-mac", required_argument, NULL, 'm' },
					      { "start", required_argument, NULL, 's' },
					      { NULL, 0, NULL, 0 } };
	unsigned mac[6];
	bool have_mac = false;
	struct send_opts o = { .seconds = 3, .flows = 1000, .batch = 256, .n_svc = 16 };
	struct in_addr base;
	int c;

	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "recv"))
		return do_recv((uint16_t)atoi(argv[2]), argc == 4 ? (unsigned)atoi(argv[3]) : 600);
	if (argc < 2 || strcmp(argv[1], "send"))
		return usage();
	optind = 2;
	while ((c = getopt_long(argc, argv, "d:f:c:b:", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.once = true;
			break;
		case 'd':
			o.seconds = atof(optarg);
			break;
		case 'f':
			o.flows = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			o.n_svc = (unsigned)atoi(optarg);
			break;
		case 'b':
			o.batch = (uint32_t)atoi(optarg);
			break;
		case 'i':
			o.ifname = optarg;
			break;
		case 's':
			o.start = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			have_mac = sscanf(optarg, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2],
					  &mac[3], &mac[4], &mac[5]) == 6;
			for (int i = 0; i < 6; i++)
				o.dst_mac[i] = (uint8_t)mac[i];
			if (!have_mac)
				return usage();
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2 || inet_pton(AF_INET, argv[optind], &base) != 1 || !o.flows ||
	    !o.n_svc || !o.batch || o.batch > MAX_BATCH || o.flows > (1u << 26) ||
	    !o.ifname != !have_mac)
		return usage();
	o.base = ntohl(base.s_addr);
	o.port = (uint16_t)atoi(argv[optind + 1]);
	return do_send(&o);
}
