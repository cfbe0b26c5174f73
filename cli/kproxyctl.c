// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kproxyctl: asks kproxyd, over its control socket, what it has programmed (dump) or
 * how it is doing (status), and prints the answer as JSON or as an aligned table in the
 * manner of ipvsadm -Ln. One printer serves both forms: the daemon always answers JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define TIMEOUT_MS 5000

static const char usage[] =
"Usage: kproxyctl [--socket PATH] COMMAND [-o table|json|yaml]\n"
"       kproxyctl dump [NS/NAME] [--vip IP] [--kind KIND] [--watch [--interval MS]\n"
"                      [--count N]]\n"
"Show what kproxyd has programmed.\n"
"\n"
"Commands:\n"
"  dump      each service frontend (VIP:port) and the endpoints behind it, as programmed\n"
"            (with --dry-run: as it would be programmed); only service NS/NAME, only\n"
"            frontends on IP (--vip), only of KIND (--kind ClusterIP, NodePort,\n"
"            ExternalIP, LoadBalancer); --watch prints what changes, asking every MS\n"
"            (1000) until interrupted (or N times: --count)\n"
"  status    backend, object counts, last sync time and result\n"
"  trace SRC DST:PORT[/PROTO]\n"
"            what this node does with a connection from SRC to DST:PORT (tcp, udp,\n"
"            sctp; [IPv6]:PORT): the frontend, or why none or a refusal, the endpoints\n"
"            and their odds, affinity, masquerading, the data plane's chain or server\n"
"  check     compare what the data plane holds (read back) with the desired state;\n"
"            exit status 0 when they agree, 1 when they differ, 2 on error\n"
"\n"
"Options:\n"
"  -s, --socket PATH   kproxyd's control socket (default /run/kproxyd.sock)\n"
"  -o, --output FORM   table (default), json or yaml\n"
"  -h, --help          print this help and exit\n"
"      --version       print the version and exit\n";

static int request(const char *path, const char *cmd, json_t **ret)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	json_error_t jerr;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "kproxyctl: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "kproxyctl: cannot reach kproxyd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -ECONNREFUSED;
	}
	if (write(fd, cmd, strlen(cmd)) < 0 || write(fd, "\n", 1) < 0) {
		fprintf(stderr, "kproxyctl: %s: %s\n", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, TIMEOUT_MS) <= 0) {
			fprintf(stderr, "kproxyctl: kproxyd did not answer within %d ms\n", TIMEOUT_MS);
			close(fd);
			free(buf);
			return -ETIMEDOUT;
		}
		if (len + 65536 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 65536);

			if (!nb) {
				close(fd);
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*ret = json_loadb(buf ? buf : "", len, 0, &jerr);
	free(buf);
	if (!*ret) {
		fprintf(stderr, "kproxyctl: bad answer from kproxyd: %s\n", jerr.text);
		return -EBADMSG;
	}
	if (json_is_string(json_object_get(*ret, "error"))) {
		fprintf(stderr, "kproxyctl: kproxyd: %s\n",
			json_string_value(json_object_get(*ret, "error")));
		json_decref(*ret);
		return -EIO;
	}
	return 0;
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static long long num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void addr_port(char *buf, size_t size, const char *ip, long long port)
{
	snprintf(buf, size, strchr(ip, ':') ? "[%s]:%lld" : "%s:%lld", ip, port);
}

static void print_dump_table(json_t *d)
{
	json_t *entries = json_object_get(d, "entries"), *e;
	size_t i;

	printf("Backend: %s%s\n", str(d, "backend"),
	       json_is_true(json_object_get(d, "dry_run")) ? " (dry run: nothing is programmed)" :
							       "");
	printf("Prot LocalAddress:Port                         Kind         Service\n");
	printf("  -> RemoteAddress:Port                        Conditions\n");
	json_array_foreach(entries, i, e) {
		json_t *eps = json_object_get(e, "endpoints"), *ep;
		char lap[80];
		size_t j;

		addr_port(lap, sizeof(lap), str(e, "vip"), num(e, "port"));
		printf("%-4s %-41s %-12s %s%s%s\n", str(e, "protocol"), lap, str(e, "kind"),
		       str(e, "service"), *str(e, "port_name") ? ":" : "", str(e, "port_name"));
		if (json_object_get(e, "detail"))
			printf("     %s\n", str(e, "detail"));
		if (!json_array_size(eps))
			printf("  -> (no endpoints: connections are rejected)\n");
		json_array_foreach(eps, j, ep) {
			char rap[80], stats[96] = "";

			addr_port(rap, sizeof(rap), str(ep, "ip"), num(ep, "port"));
			if (json_object_get(ep, "weight"))
				snprintf(stats, sizeof(stats), " weight %lld active %lld inactive %lld",
					 num(ep, "weight"), num(ep, "active_conns"),
					 num(ep, "inactive_conns"));
			printf("  -> %-41s %s%s%s%s\n", rap,
			       json_object_get(ep, "weight") ? (num(ep, "weight") ? "in-service" :
								   "draining") :
			       json_is_true(json_object_get(ep, "ready")) ? "ready" :
			       json_is_true(json_object_get(ep, "serving")) ? "serving" : "not-ready",
			       json_object_get(ep, "weight") ? "" :
			       json_is_true(json_object_get(ep, "terminating")) ? " terminating" : "",
			       json_is_true(json_object_get(ep, "local")) ? " local" : "", stats);
		}
	}
}

static void print_eps(const char *label, json_t *a)
{
	size_t i;
	json_t *e;

	printf("     %s:", label);
	if (!json_array_size(a))
		printf(" (none)");
	json_array_foreach(a, i, e) {
		printf(" %s", json_string_value(e));
	}
	printf("\n");
}

static void print_check_table(json_t *c)
{
	json_t *diffs = json_object_get(c, "differences"), *d;
	size_t i;

	json_array_foreach(diffs, i, d) {
		char lap[80];
		const char *what = str(d, "what");

		addr_port(lap, sizeof(lap), str(d, "vip"), num(d, "port"));
		printf("%-9s %-4s %-41s %-12s %s%s%s\n", !strcmp(what, "missing") ? "MISSING" :
		       !strcmp(what, "extra") ? "EXTRA" : "DIFFERS", str(d, "protocol"), lap,
		       str(d, "kind"), str(d, "service"), *str(d, "port_name") ? ":" : "",
		       str(d, "port_name"));
		if (json_is_array(json_object_get(d, "want")))
			print_eps("wanted", json_object_get(d, "want"));
		if (json_is_array(json_object_get(d, "have")))
			print_eps("programmed", json_object_get(d, "have"));
	}
	printf("%s: %lld difference%s between the data plane (%s) and the desired state%s\n",
	       json_is_true(json_object_get(c, "agree")) ? "ok" : "DRIFT",
	       num(c, "differences_count"), num(c, "differences_count") == 1 ? "" : "s",
	       str(c, "backend"), json_is_true(json_object_get(c, "pending")) ?
	       " (changes are pending: the next sync may close them)" : "");
}

static void print_trace_table(json_t *t)
{
	json_t *x;
	size_t i;

	printf("%s -> %s: %s%s%s\n", str(t, "source"), str(t, "destination"),
	       str(t, "verdict"), *str(t, "service") ? ", " : "", str(t, "service"));
	json_array_foreach(json_object_get(t, "steps"), i, x) {
		printf("  %s\n", json_string_value(x));
	}
	if (json_array_size(json_object_get(t, "endpoints"))) {
		printf("  endpoints:");
		json_array_foreach(json_object_get(t, "endpoints"), i, x) {
			printf(" %s", json_string_value(x));
		}
		printf("\n");
	}
}

static void print_time(const char *label, long long ms)
{
	char buf[64];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms) {
		printf("%-18s never\n", label);
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-18s %s\n", label, buf);
}

/* The data plane's options in force: "name = value (--flag)". */
static void print_options(json_t *opts)
{
	size_t i;
	json_t *o;

	json_array_foreach(opts, i, o) {
		const char *v = str(o, "value"), *flag = str(o, "flag");

		printf("%-18s %s = %s%s%s%s\n", i ? "" : "Options:", str(o, "name"),
		       *v ? v : "(unset)", *flag ? " (--" : "", flag, *flag ? ")" : "");
	}
}

static void print_status_table(json_t *s)
{
	json_t *o = json_object_get(s, "objects"), *sy = json_object_get(s, "sync");

	printf("%-18s %s\n", "Version:", str(s, "version"));
	printf("%-18s %s%s\n", "Backend:", str(s, "backend"),
	       json_is_true(json_object_get(s, "dry_run")) ? " (dry run)" : "");
	printf("%-18s %s\n", "Proxy mode:", str(s, "proxy_mode"));
	printf("%-18s %s\n", "Node:", str(s, "node"));
	if (*str(s, "manifests"))
		printf("%-18s %s\n", "Manifests:", str(s, "manifests"));
	if (json_is_object(json_object_get(s, "api"))) {
		json_t *a = json_object_get(s, "api");

		printf("%-18s %s; %lld lists (%lld after 410), %lld watches, %lld restarted, "
		       "%lld events, %lld errors\n", "API server:",
		       json_is_true(json_object_get(a, "synced")) ? "synced" :
		       "listing (nothing programmed yet)", num(a, "lists"), num(a, "relists"),
		       num(a, "watches"), num(a, "watch_restarts"), num(a, "events"),
		       num(a, "errors"));
	}
	printf("%-18s %lld services, %lld endpoint slices, %lld endpoints, %lld service ports\n",
	       "Objects:", num(o, "services"), num(o, "endpointslices"), num(o, "endpoints"),
	       num(o, "service_ports"));
	printf("%-18s %lld\n", "Rejected objects:", num(o, "rejected"));
	printf("%-18s %lld (%lld failed)%s\n", "Syncs:", num(sy, "count"), num(sy, "errors"),
	       json_is_true(json_object_get(sy, "pending")) ? ", changes pending" : "");
	print_time("Last sync:", num(sy, "last_time_ms"));
	if (json_is_real(json_object_get(sy, "last_duration_s")))
		printf("%-18s %.3f s (%s)\n", "Last sync took:",
		       json_real_value(json_object_get(sy, "last_duration_s")),
		       json_is_true(json_object_get(sy, "last_full")) ? "full" : "partial");
	if (num(sy, "services_pending"))
		printf("%-18s %lld services changed since the last good sync\n", "Pending:",
		       num(sy, "services_pending"));
	printf("%-18s %s\n", "Last sync result:",
	       num(sy, "last_result") ? str(sy, "last_error") : "ok");
	if (json_is_object(json_object_get(s, "node_netfilter"))) {
		json_t *fw = json_object_get(s, "node_netfilter");

		printf("%-18s %s (%lld rules in nf_tables, %lld in legacy tables)%s\n",
		       "Node netfilter:", str(fw, "backend"), num(fw, "nft_rules"),
		       num(fw, "legacy_rules"), !strcmp(str(fw, "backend"), "nft") &&
		       strcmp(str(s, "proxy_mode"), "nftables") ? "; the node's rules are in "
		       "nf_tables: --proxy-mode nftables is the way out" : "");
	}
	print_options(json_object_get(s, "options"));
	{
		json_t *dp = json_object_get(s, "dataplane"), *x;
		size_t i;

		json_array_foreach(dp, i, x) {
			printf("%-18s %s%s%s%s = %g\n", i ? "" : "Data plane:", str(x, "name"),
			       *str(x, "labels") ? "{" : "", str(x, "labels"),
			       *str(x, "labels") ? "}" : "",
			       json_number_value(json_object_get(x, "value")));
		}
	}
	if (json_array_size(json_object_get(s, "service_cidrs"))) {
		json_t *x;
		size_t i;

		printf("%-18s", "Service CIDRs:");
		json_array_foreach(json_object_get(s, "service_cidrs"), i, x) {
			printf(" %s", json_string_value(x));
		}
		printf("\n");
	}
}

/* YAML for -o yaml: block style, strings as JSON writes them (valid YAML). */
static void yaml_scalar(json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY);

	fputs(s ? s : "null", stdout);
	free(s);
}

static void yaml(json_t *v, int indent, bool in_list)
{
	const char *key;
	json_t *x;
	size_t i;
	bool first = true;

	if (json_is_object(v) && json_object_size(v)) {
		json_object_foreach(v, key, x) {
			printf("%*s%s:", first && in_list ? 0 : indent, "", key);
			first = false;
			if ((json_is_object(x) && json_object_size(x)) ||
			    (json_is_array(x) && json_array_size(x))) {
				putchar('\n');
				yaml(x, indent + 2, false);
			} else {
				putchar(' ');
				if (json_is_object(x))
					fputs("{}", stdout);
				else if (json_is_array(x))
					fputs("[]", stdout);
				else
					yaml_scalar(x);
				putchar('\n');
			}
		}
	} else if (json_is_array(v) && json_array_size(v)) {
		json_array_foreach(v, i, x) {
			printf("%*s- ", indent, "");
			if ((json_is_object(x) && json_object_size(x)) ||
			    (json_is_array(x) && json_array_size(x))) {
				yaml(x, indent + 2, true);
			} else {
				yaml_scalar(x);
				putchar('\n');
			}
		}
	} else {
		printf("%*s", indent, "");
		yaml_scalar(v);
		putchar('\n');
	}
}

struct filter {
	const char *service, *vip, *kind;
};

/* Keeps the dump's entries that @f selects. */
static void filter_dump(json_t *d, const struct filter *f)
{
	json_t *entries = json_object_get(d, "entries");

	for (size_t i = json_array_size(entries); i-- > 0;) {
		json_t *e = json_array_get(entries, i);

		if ((f->service && strcmp(str(e, "service"), f->service)) ||
		    (f->vip && strcmp(str(e, "vip"), f->vip)) ||
		    (f->kind && strcasecmp(str(e, "kind"), f->kind)))
			json_array_remove(entries, i);
	}
}

/* "TCP 10.96.0.10:80 ClusterIP t/web:p" and "-> a:p b:q" of one entry */
static void entry_text(json_t *e, char *key, size_t key_size, char *eps, size_t eps_size)
{
	json_t *ep;
	size_t i, len = 0;
	char lap[80];

	addr_port(lap, sizeof(lap), str(e, "vip"), num(e, "port"));
	snprintf(key, key_size, "%s %s %s %s%s%s", str(e, "protocol"), lap, str(e, "kind"),
		 str(e, "service"), *str(e, "port_name") ? ":" : "", str(e, "port_name"));
	eps[0] = 0;
	json_array_foreach(json_object_get(e, "endpoints"), i, ep) {
		char rap[80];

		addr_port(rap, sizeof(rap), str(ep, "ip"), num(ep, "port"));
		len += (size_t)snprintf(eps + len, len < eps_size ? eps_size - len : 0, " %s", rap);
		if (len >= eps_size)
			break;
	}
}

/* --watch: what changed between two dumps, one line each, "+" new, "-" gone, "~" other
 * endpoints. */
static void print_changes(json_t *old, json_t *cur)
{
	json_t *seen = json_object(), *e;
	size_t i;
	char ts[32], key[400], eps[4096];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	json_array_foreach(json_object_get(old, "entries"), i, e) {
		entry_text(e, key, sizeof(key), eps, sizeof(eps));
		json_object_set_new(seen, key, json_string(eps));
	}
	json_array_foreach(json_object_get(cur, "entries"), i, e) {
		const char *was;

		entry_text(e, key, sizeof(key), eps, sizeof(eps));
		was = json_string_value(json_object_get(seen, key));
		if (!was)
			printf("%s + %s ->%s\n", ts, key, *eps ? eps : " (no endpoints)");
		else if (strcmp(was, eps))
			printf("%s ~ %s ->%s\n", ts, key, *eps ? eps : " (no endpoints)");
		json_object_del(seen, key);
	}
	{
		const char *k;
		json_t *v;

		json_object_foreach(seen, k, v) {
			printf("%s - %s\n", ts, k);
		}
	}
	fflush(stdout);
	json_decref(seen);
}

/* "dump", or "dump NS/NAME": kproxyd then reads back that service alone */
static const char *dump_request(const struct filter *f, char *buf, size_t size)
{
	snprintf(buf, size, "dump%s%s", f->service ? " " : "", f->service ? f->service : "");
	return buf;
}

static int watch_dump(const char *sock, const struct filter *f, long interval_ms, long count)
{
	char req[300];

	json_t *old = json_pack("{s:[]}", "entries"), *cur;

	for (long n = 0; count <= 0 || n < count; n++) {
		if (n) {
			struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		if (request(sock, dump_request(f, req, sizeof(req)), &cur) < 0) {
			json_decref(old);
			return 1;
		}
		filter_dump(cur, f);
		print_changes(old, cur);
		json_decref(old);
		old = cur;
	}
	json_decref(old);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "vip", required_argument, NULL, 'v' },
		{ "kind", required_argument, NULL, 'k' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	const char *sock = "/run/kproxyd.sock", *out = "table", *cmd;
	struct filter flt = { 0 };
	bool watch = false;
	long interval_ms = 1000, count = 0;
	json_t *resp;
	char req[300];
	int c;

	/* "+" would stop at the command; options may also follow it */
	while ((c = getopt_long(argc, argv, "s:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'o': out = optarg; break;
		case 'v': flt.vip = optarg; break;
		case 'k': flt.kind = optarg; break;
		case 'w': watch = true; break;
		case 'i': interval_ms = atol(optarg); break;
		case 'c': count = atol(optarg); break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("kproxyctl %s\n", PACKAGE_VERSION); return 0;
		default: fputs("Try 'kproxyctl --help'.\n", stderr); return 2;
		}
	}
	if (optind < argc && !strcmp(argv[optind], "trace")) {
		if (optind != argc - 3) {
			fputs("kproxyctl: trace SRC DST:PORT[/PROTO]\n", stderr);
			return 2;
		}
		if (strcmp(out, "table") && strcmp(out, "json") && strcmp(out, "yaml")) {
			fprintf(stderr, "kproxyctl: -o: \"%s\" is not table, json or yaml\n", out);
			return 2;
		}
		snprintf(req, sizeof(req), "trace %.128s %.128s", argv[optind + 1],
			 argv[optind + 2]);
		if (request(sock, req, &resp) < 0)
			return 1;
		if (!strcmp(out, "json")) {
			json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			putchar('\n');
		} else if (!strcmp(out, "yaml")) {
			yaml(resp, 0, false);
		} else {
			print_trace_table(resp);
		}
		json_decref(resp);
		return 0;
	}
	if (optind >= argc || optind < argc - 2 ||
	    (optind == argc - 2 && strcmp(argv[optind], "dump"))) {
		fputs(optind >= argc ? "kproxyctl: no command given\n" :
		      "kproxyctl: one command at a time (dump takes one NS/NAME)\n", stderr);
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[optind];
	if (optind == argc - 2) {
		flt.service = argv[optind + 1];
		if (!strchr(flt.service, '/')) {
			fprintf(stderr, "kproxyctl: dump %s: a service is NAMESPACE/NAME\n",
				flt.service);
			return 2;
		}
	}
	if ((flt.vip || flt.kind || watch) && strcmp(cmd, "dump")) {
		fputs("kproxyctl: --vip, --kind and --watch go with dump\n", stderr);
		return 2;
	}
	if (flt.kind && strcasecmp(flt.kind, "ClusterIP") && strcasecmp(flt.kind, "NodePort") &&
	    strcasecmp(flt.kind, "ExternalIP") && strcasecmp(flt.kind, "LoadBalancer")) {
		fprintf(stderr, "kproxyctl: --kind %s: one of ClusterIP, NodePort, ExternalIP, "
			"LoadBalancer\n", flt.kind);
		return 2;
	}
	if (interval_ms < 10 || interval_ms > 3600000) {
		fputs("kproxyctl: --interval: 10 to 3600000 ms\n", stderr);
		return 2;
	}
	if (strcmp(cmd, "dump") && strcmp(cmd, "status") && strcmp(cmd, "check")) {
		fprintf(stderr, "kproxyctl: unknown command \"%s\" (dump, status, check, trace)\n",
			cmd);
		return 2;
	}
	if (strcmp(out, "table") && strcmp(out, "json") && strcmp(out, "yaml")) {
		fprintf(stderr, "kproxyctl: -o: \"%s\" is not table, json or yaml\n", out);
		return 2;
	}
	if (watch)
		return watch_dump(sock, &flt, interval_ms, count);
	if (request(sock, strcmp(cmd, "dump") ? cmd : dump_request(&flt, req, sizeof(req)),
		    &resp) < 0)
		return strcmp(cmd, "check") ? 1 : 2;
	if (strcmp(cmd, "dump") == 0)
		filter_dump(resp, &flt);
	if (strcmp(out, "json") == 0) {
		json_dumpf(resp, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else if (strcmp(out, "yaml") == 0) {
		yaml(resp, 0, false);
	} else if (strcmp(cmd, "dump") == 0) {
		print_dump_table(resp);
	} else if (strcmp(cmd, "check") == 0) {
		print_check_table(resp);
	} else {
		print_status_table(resp);
	}
	c = strcmp(cmd, "check") ? 0 : json_is_true(json_object_get(resp, "agree")) ? 0 : 1;
	json_decref(resp);
	return c;
}
