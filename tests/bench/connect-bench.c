// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * First-connection cost: N TCP connects (each closed at once) to IP:PORT, one at a time;
 * prints the mean and the median in microseconds. The connection's first packet is the
 * one that walks the nat table, so this is what a longer KUBE-SERVICES costs.
 * Usage: connect-bench IP PORT N
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int n = argc > 3 ? atoi(argv[3]) : 0;
	double *t, sum = 0;

	if (n < 1 || inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
		fprintf(stderr, "usage: connect-bench IP PORT N\n");
		return 2;
	}
	sin.sin_port = htons((uint16_t)atoi(argv[2]));
	t = calloc((size_t)n, sizeof(*t));
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct linger lg = { 1, 0 };	/* RST on close: no TIME_WAIT pile-up */
		double t0 = now_us();

		if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
			perror("connect-bench: connect");
			return 1;
		}
		t[i] = now_us() - t0;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		sum += t[i];
	}
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("connects=%d mean_us=%.1f median_us=%.1f\n", n, sum / n, t[n / 2]);
	free(t);
	return 0;
}
