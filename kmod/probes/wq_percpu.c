// SPDX-License-Identifier: GPL-2.0
/*
 * WQ_PERCPU (6.17+, and in Debian's 6.12): a per-CPU workqueue says so; 7.2+
 * warns about alloc_workqueue() with neither WQ_PERCPU nor WQ_UNBOUND.
 */
#include <linux/workqueue.h>

struct workqueue_struct *bdsnap_probe(void);
struct workqueue_struct *bdsnap_probe(void)
{
	return alloc_workqueue("bdsnap_probe", WQ_PERCPU, 0);
}
