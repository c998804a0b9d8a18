// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the memory cap on pre-images, the FIFO of writers that wait for
 * it, and the watchdog that keeps a stuck store from holding origin I/O.
 *
 * Memory. Pre-images in memory, and those written to the store but not
 * yet synced (dirty page cache), are capped at inflight_limit_mb. An op
 * that would exceed the cap parks at the tail of a FIFO (its writer waits)
 * and is resumed as store syncs free memory. It keeps its place when
 * resumed and still short.
 *
 * Watchdog. Once a second while there are sessions it looks at:
 *  - the oldest claimed extent of each session (the oldest held write:
 *    every held write waits on an extent, or on the throttle);
 *  - the store I/O each session's worker is in (write, fsync);
 *  - the throttle's head, from the moment it first parked;
 *  - a failing session whose failure the store has not yet recorded.
 * Anything older than watchdog_secs fails its session (the store stopped
 * answering) and every write it holds is released at once: the origin
 * never waits on the store for longer than that.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/jiffies.h>
#include <linux/sched/mm.h>

#include "core.h"

unsigned int bdsnap_watchdog_secs = 60;

static int bdsnap_watchdog_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int ret = kstrtouint(val, 0, &v);

	if (ret)
		return ret;
	if (v < 1 || v > 3600)
		return -EINVAL;
	WRITE_ONCE(bdsnap_watchdog_secs, v);
	return 0;
}

static const struct kernel_param_ops bdsnap_watchdog_ops = {
	.set = bdsnap_watchdog_set,
	.get = param_get_uint,
};
module_param_cb(watchdog_secs, &bdsnap_watchdog_ops, &bdsnap_watchdog_secs, 0644);
MODULE_PARM_DESC(watchdog_secs,
		 "A write held this long for the store (1..3600 s) fails the session and is let through");

static LIST_HEAD(bdsnap_throttle_list);
static DEFINE_SPINLOCK(bdsnap_throttle_lock);
static struct delayed_work bdsnap_throttle_work;
static struct delayed_work bdsnap_watchdog_work;

static unsigned long bdsnap_watchdog_jiffies(void)
{
	return READ_ONCE(bdsnap_watchdog_secs) * HZ;
}

/* ---- memory accounting ---- */

u64 bdsnap_mem_limit(void)
{
	return (u64)bdsnap_inflight_limit_mb << 20;
}

/* Always succeeds when nothing is held, so one op can always progress. */
bool bdsnap_mem_reserve(u64 bytes)
{
	s64 cur = atomic64_read(&bdsnap_inflight_bytes), peak;

	do {
		if (cur && cur + bytes > bdsnap_mem_limit())
			return false;
	} while (!atomic64_try_cmpxchg(&bdsnap_inflight_bytes, &cur, cur + bytes));

	peak = atomic64_read(&bdsnap_inflight_peak);
	while (cur + (s64)bytes > peak &&
	       !atomic64_try_cmpxchg(&bdsnap_inflight_peak, &peak, cur + bytes))
		;
	return true;
}

void bdsnap_mem_release(u64 bytes)
{
	atomic64_sub(bytes, &bdsnap_inflight_bytes);
	/* Pairs with the barrier in bdsnap_throttle_recheck(). */
	smp_mb__after_atomic();
	if (!list_empty_careful(&bdsnap_throttle_list))
		mod_delayed_work(bdsnap_cow_wq, &bdsnap_throttle_work, 0);
}

/* ---- the FIFO ---- */

/* Somebody waits for memory: a new op must queue behind it. */
bool bdsnap_throttle_waiting(void)
{
	return !list_empty_careful(&bdsnap_throttle_list);
}

/* May be called under s->lock (lock order: s->lock -> throttle lock). */
void bdsnap_throttle_park(struct bdsnap_op *op)
{
	unsigned long flags;

	spin_lock_irqsave(&bdsnap_throttle_lock, flags);
	/* The watchdog measures from the first park, not the latest. */
	if (!op->parked_at)
		op->parked_at = jiffies | 1;
	/* Resumed by the throttle and still short: keep its place. */
	if (op->from_throttle)
		list_add(&op->park, &bdsnap_throttle_list);
	else
		list_add_tail(&op->park, &bdsnap_throttle_list);
	spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);
}

/*
 * After parking an op that needs bytes: memory freed just before it parked
 * must not be missed. Only a head that now fits is worth resuming; anything
 * else would spin against the store worker it waits for.
 */
void bdsnap_throttle_recheck(u64 bytes)
{
	s64 cur;

	smp_mb();
	cur = atomic64_read(&bdsnap_inflight_bytes);
	if (!cur || cur + bytes <= bdsnap_mem_limit())
		mod_delayed_work(bdsnap_cow_wq, &bdsnap_throttle_work, 0);
}

/* An allocation failed: try the head again a little later. */
void bdsnap_throttle_retry_later(void)
{
	queue_delayed_work(bdsnap_cow_wq, &bdsnap_throttle_work, HZ / 10);
}

static void bdsnap_throttle_fn(struct work_struct *work)
{
	unsigned int noio = memalloc_noio_save();

	for (;;) {
		struct bdsnap_op *op;
		unsigned long flags;

		spin_lock_irqsave(&bdsnap_throttle_lock, flags);
		op = list_first_entry_or_null(&bdsnap_throttle_list,
					      struct bdsnap_op, park);
		if (op)
			list_del_init(&op->park);
		spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);
		if (!op)
			break;
		op->from_throttle = true;
		if (bdsnap_op_run(op) == OP_THROTTLED)
			break;
	}
	memalloc_noio_restore(noio);
}

/* A failing session takes its throttled ops back (they go to @out). */
void bdsnap_throttle_forget(struct bdsnap_session *s, struct list_head *out)
{
	struct bdsnap_op *op, *tmp;
	unsigned long flags;

	spin_lock_irqsave(&bdsnap_throttle_lock, flags);
	list_for_each_entry_safe(op, tmp, &bdsnap_throttle_list, park) {
		if (op->cur < op->nr && op->t[op->cur].s == s)
			list_move_tail(&op->park, out);
	}
	spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);
}

/* ---- the watchdog ---- */

void bdsnap_watchdog_arm(void)
{
	mod_delayed_work(bdsnap_cow_wq, &bdsnap_watchdog_work, HZ);
}

static bool bdsnap_older(unsigned long since, unsigned long limit)
{
	return since && time_after(jiffies, since + limit);
}

/* What in @s has waited too long, or NULL. */
static const char *bdsnap_session_stalled(struct bdsnap_session *s,
					  unsigned long limit, bool *release)
{
	struct bdsnap_extent *e;
	const char *why = NULL;
	unsigned long flags;

	*release = false;
	spin_lock_irqsave(&s->lock, flags);
	if (s->state == BDSNAP_SESSION_OPEN) {
		e = list_first_entry_or_null(&s->outstanding,
					     struct bdsnap_extent, node);
		if (bdsnap_older(READ_ONCE(s->store_busy_since), limit))
			why = "the store did not complete a write or sync in time";
		else if (e && bdsnap_older(e->claimed_at, limit))
			why = "a pre-image was not durable in time";
	} else if (s->failing && bdsnap_older(s->failed_at, limit)) {
		*release = true;
	}
	spin_unlock_irqrestore(&s->lock, flags);
	return why;
}

/* The throttle's head waits too long: fail the session holding the most. */
static void bdsnap_throttle_stalled(unsigned long limit)
{
	struct bdsnap_session *victim = NULL;
	struct bdsnap_dev *dev;
	struct bdsnap_op *op;
	unsigned long flags;
	bool stalled;
	u64 most = 0;

	spin_lock_irqsave(&bdsnap_throttle_lock, flags);
	op = list_first_entry_or_null(&bdsnap_throttle_list, struct bdsnap_op, park);
	stalled = op && bdsnap_older(op->parked_at, limit);
	spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);
	if (!stalled)
		return;

	rcu_read_lock();
	list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
		struct bdsnap_session *s = rcu_dereference(dev->session);

		if (s && READ_ONCE(s->state) == BDSNAP_SESSION_OPEN &&
		    READ_ONCE(s->pending_bytes) >= most) {
			if (victim)
				bdsnap_session_put(victim);
			bdsnap_session_get(s);
			victim = s;
			most = READ_ONCE(s->pending_bytes);
		}
	}
	rcu_read_unlock();
	if (victim) {
		bdsnap_session_fail(victim, -ETIMEDOUT,
				    "writers waited too long for pre-image memory");
		bdsnap_session_put(victim);
	}
}

/* Act on what bdsnap_session_stalled() found. The caller keeps s alive. */
static void bdsnap_watchdog_act(struct bdsnap_session *s, const char *why)
{
	if (why) {
		/*
		 * The store is stuck: it cannot record the failure either, so
		 * the writes go now. The store worker records it if the store
		 * ever answers again.
		 */
		__bdsnap_session_fail(s, -ETIMEDOUT, why);
		queue_work(bdsnap_store_wq, &s->store_work);
	} else {
		pr_err("%s: session %s: the failure is not yet recorded in the store after %u s; letting held writes through\n",
		       s->dev->name, s->id, READ_ONCE(bdsnap_watchdog_secs));
	}
	bdsnap_cow_release(s);
}

/* One session's check, for a closing session the periodic pass cannot see. */
void bdsnap_watchdog_check(struct bdsnap_session *s)
{
	bool release;
	const char *why = bdsnap_session_stalled(s, bdsnap_watchdog_jiffies(),
						 &release);

	if (why || release)
		bdsnap_watchdog_act(s, why);
}

static void bdsnap_watchdog_fn(struct work_struct *work)
{
	unsigned long limit = bdsnap_watchdog_jiffies();
	struct bdsnap_dev *dev;

	for (;;) {
		struct bdsnap_session *victim = NULL;
		const char *why = NULL;
		bool release = false;

		rcu_read_lock();
		list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
			struct bdsnap_session *s = rcu_dereference(dev->session);

			if (!s)
				continue;
			why = bdsnap_session_stalled(s, limit, &release);
			if (why || release) {
				bdsnap_session_get(s);
				victim = s;
				break;
			}
		}
		rcu_read_unlock();
		if (!victim)
			break;
		bdsnap_watchdog_act(victim, why);
		bdsnap_session_put(victim);
	}
	bdsnap_throttle_stalled(limit);

	if (atomic_read(&bdsnap_nr_sessions) ||
	    !list_empty_careful(&bdsnap_throttle_list))
		queue_delayed_work(bdsnap_cow_wq, &bdsnap_watchdog_work, HZ);
}

int bdsnap_throttle_init(void)
{
	INIT_DELAYED_WORK(&bdsnap_throttle_work, bdsnap_throttle_fn);
	INIT_DELAYED_WORK(&bdsnap_watchdog_work, bdsnap_watchdog_fn);
	return 0;
}

void bdsnap_throttle_exit(void)
{
	cancel_delayed_work_sync(&bdsnap_watchdog_work);
	cancel_delayed_work_sync(&bdsnap_throttle_work);
}
