// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A proxy's lifetime: the control thread holds one reference to each proxy it programs,
 * and a worker one for each listener and connection of it it serves; the last reference
 * let go frees the proxy and its endpoints, so a proxy removed by a sync lives on until
 * its last connection closes.
 */
#include <pthread.h>
#include <stdlib.h>

#include "us.h"

void us_proxy_ref(struct us_proxy *px)
{
	atomic_fetch_add_explicit(&px->refs, 1, memory_order_relaxed);
}

void us_proxy_unref(struct us_proxy *px)
{
	if (!px || atomic_fetch_sub_explicit(&px->refs, 1, memory_order_acq_rel) != 1)
		return;
	lb_free_all(px);
	pthread_mutex_destroy(&px->lock);
	free(px->key);
	free(px->label);
	free(px->ns);
	free(px->name);
	free(px->port_name);
	free(px->fes);
	free(px->ranges);
	free(px->range_prefixes);
	free(px->lst);
	free(px);
}
