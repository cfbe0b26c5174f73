// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * One kproxyd per node: the first one that programs a node's tables holds a listening
 * socket at an abstract address, which belongs to the network namespace (the node, as
 * far as netfilter, IPVS and conntrack are concerned) and goes with the process however
 * it ends, SIGKILL included: nothing is left behind to clean. A second one finds the
 * address taken, asks the holder's socket who it is (SO_PEERCRED) and refuses to start,
 * naming it. A dry run programs nothing and takes no lock.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kpd.h"

#define LOCK_NAME "kproxyd-node-lock"

static socklen_t lock_addr(struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + 1, LOCK_NAME, sizeof(LOCK_NAME) - 1);	/* abstract: "\0..." */
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof(LOCK_NAME));
}

/* The pid of the process listening at the lock's address, or 0. */
static pid_t holder(void)
{
	struct sockaddr_un a;
	socklen_t len = lock_addr(&a);
	struct ucred cred = { 0 };
	socklen_t clen = sizeof(cred);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t pid = 0;

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, len) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		pid = cred.pid;
	if (fd >= 0)
		close(fd);
	return pid;
}

int kpd_node_lock(int *ret_fd)
{
	struct sockaddr_un a;
	socklen_t len = lock_addr(&a);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
	pid_t pid;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, len) == 0 && listen(fd, 1) == 0) {
		*ret_fd = fd;
		return 0;
	}
	r = -errno;
	close(fd);
	if (r != -EADDRINUSE)
		return r;
	pid = holder();
	if (pid > 0)
		kpd_err("another kproxyd (pid %ld) already programs this node (network namespace): "
			"two would rewrite the same tables; stop it first", (long)pid);
	else
		kpd_err("another kproxyd already programs this node (network namespace)");
	return -EBUSY;
}
