// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: ftrace redirection of three exported kernel functions, the way
 * livepatch does it: an ftrace_ops with IPMODIFY on the function's entry
 * whose callback points the saved instruction pointer at our wrapper. The
 * wrapper runs in place of the function, with its arguments and its
 * caller's return address, and calls the real function when it wants to.
 * Kernel text and rodata are never written by us; ftrace patches its own
 * call sites.
 *
 *   submit_bio_noacct       every bio. The callback redirects only writes
 *                           (incl. discard, write-zeroes, flushes) to disks
 *                           that may be tracked; reads and other disks pay
 *                           one test in the callback.
 *   vfs_get_tree            mount: a session is opened before the real call,
 *                           so fill_super and journal replay are captured.
 *   deactivate_locked_super unmount: the session closes after the real call,
 *                           once the filesystem has written everything.
 *
 * The wrapper's own call of the real function re-enters the ftrace
 * callback; it is recognised by its return address inside this module and
 * passes through. That is why the module is built without sibling-call
 * optimisation (Kbuild): a tail call would leave our caller's return
 * address instead and the hook would recurse. Any other call from this
 * module (the pre-image reads, resubmitted writes) passes through the same
 * way.
 *
 * Unload: after unregistering, a task may still run in a wrapper (asleep in
 * the real vfs_get_tree, say). Wrappers count themselves; exit waits for an
 * RCU-tasks grace period (no task between redirect and wrapper entry), for
 * the count to reach zero, and for another grace period (no task between
 * the decrement and the wrapper's return).
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/delay.h>
#include <linux/rcupdate.h>
#include <linux/rcupdate_wait.h>

#include "core.h"
#include "compat.h"

static atomic_t bdsnap_in_wrapper = ATOMIC_INIT(0);

struct bdsnap_hook {
	const char *name;
	unsigned long addr;
	void *wrapper;
	bool (*want)(struct ftrace_regs *fregs);
	bool registered;
	struct ftrace_ops ops;
};

/* ---- the wrappers ---- */

static void bdsnap_submit_bio_noacct(struct bio *bio)
{
	atomic_inc(&bdsnap_in_wrapper);
	if (!bdsnap_cow_submit(bio))
		submit_bio_noacct(bio);
	atomic_dec(&bdsnap_in_wrapper);
}

static int bdsnap_vfs_get_tree(struct fs_context *fc)
{
	struct bdsnap_session *s;
	int ret;

	atomic_inc(&bdsnap_in_wrapper);
	s = bdsnap_mount_begin(fc);
	if (IS_ERR(s)) {
		/* A mount bdsnap could not protect, refused (session.c). */
		atomic_dec(&bdsnap_in_wrapper);
		return PTR_ERR(s);
	}
	ret = vfs_get_tree(fc);
	if (s)
		bdsnap_mount_end(s, ret, fc);
	atomic_dec(&bdsnap_in_wrapper);
	return ret;
}

static void bdsnap_deactivate_locked_super(struct super_block *sb)
{
	struct bdsnap_session *s;
	bool last;

	atomic_inc(&bdsnap_in_wrapper);
	/* The sb may be freed by the real call: look at it before. */
	s = bdsnap_umount_begin(sb, &last);
	deactivate_locked_super(sb);
	if (s)
		bdsnap_umount_end(s, last);
	atomic_dec(&bdsnap_in_wrapper);
}

/* ---- what the ftrace callback redirects ---- */

static bool notrace bdsnap_want_bio(struct ftrace_regs *fregs)
{
	struct bio *bio = (struct bio *)bdsnap_ftrace_arg0(fregs);

	if (!bio || !op_is_write(bio_op(bio)))
		return false;
	return bdsnap_disk_filter(bio->bi_bdev->bd_disk);
}

static bool notrace bdsnap_want_mount(struct ftrace_regs *fregs)
{
	return atomic_read(&bdsnap_nr_devs) > 0;
}

static bool notrace bdsnap_want_umount(struct ftrace_regs *fregs)
{
	return atomic_read(&bdsnap_nr_sessions) > 0;
}

static void notrace bdsnap_ftrace_cb(unsigned long ip, unsigned long parent_ip,
				     struct ftrace_ops *ops,
				     struct ftrace_regs *fregs)
{
	struct bdsnap_hook *h = container_of(ops, struct bdsnap_hook, ops);

	/* Our own calls must reach the real function. */
	if (within_module(parent_ip, THIS_MODULE))
		return;
	if (!h->want(fregs))
		return;
	bdsnap_ftrace_set_ip(fregs, (unsigned long)h->wrapper);
}

static struct bdsnap_hook bdsnap_hooks[] = {
	{
		.name = "submit_bio_noacct",
		.addr = (unsigned long)submit_bio_noacct,
		.wrapper = bdsnap_submit_bio_noacct,
		.want = bdsnap_want_bio,
	},
	{
		.name = "vfs_get_tree",
		.addr = (unsigned long)vfs_get_tree,
		.wrapper = bdsnap_vfs_get_tree,
		.want = bdsnap_want_mount,
	},
	{
		.name = "deactivate_locked_super",
		.addr = (unsigned long)deactivate_locked_super,
		.wrapper = bdsnap_deactivate_locked_super,
		.want = bdsnap_want_umount,
	},
};

static void bdsnap_hook_remove(struct bdsnap_hook *h)
{
	int ret;

	if (!h->registered)
		return;
	ret = unregister_ftrace_function(&h->ops);
	if (ret)
		pr_err("cannot unregister the %s hook: %d\n", h->name, ret);
	ftrace_free_filter(&h->ops);
	h->registered = false;
}

static int bdsnap_hook_install(struct bdsnap_hook *h)
{
	int ret;

	h->ops.func = bdsnap_ftrace_cb;
	/*
	 * SAVE_REGS: the callback reads the first argument from pt_regs on
	 * every kernel. RECURSION: ftrace guards the callback. PERMANENT:
	 * "sysctl kernel.ftrace_enabled=0" must not silently stop the
	 * copy-on-write; it is refused while we are loaded.
	 */
	h->ops.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY |
		       FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_PERMANENT;
	ret = ftrace_set_filter_ip(&h->ops, h->addr, 0, 0);
	if (ret) {
		pr_err("cannot hook %s: ftrace_set_filter_ip: %d\n", h->name, ret);
		ftrace_free_filter(&h->ops);
		return ret;
	}
	ret = register_ftrace_function(&h->ops);
	if (ret) {
		pr_err("cannot hook %s: register_ftrace_function: %d%s\n",
		       h->name, ret,
		       ret == -EBUSY ? " (another IPMODIFY user, e.g. a livepatch?)" : "");
		ftrace_free_filter(&h->ops);
		return ret;
	}
	h->registered = true;
	return 0;
}

int bdsnap_hooks_init(void)
{
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(bdsnap_hooks); i++) {
		ret = bdsnap_hook_install(&bdsnap_hooks[i]);
		if (ret) {
			bdsnap_hooks_exit();
			return ret;
		}
	}
	return 0;
}

void bdsnap_hooks_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(bdsnap_hooks) - 1; i >= 0; i--)
		bdsnap_hook_remove(&bdsnap_hooks[i]);
	synchronize_rcu_tasks();
	while (atomic_read(&bdsnap_in_wrapper))
		msleep(20);
	synchronize_rcu_tasks();
}
