// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the store worker, one per session (a work item never runs
 * concurrently with itself). It group-commits: every pre-image read since
 * its last pass is appended to blocks.dat, then blocks.dat is synced, the
 * records go to blocks.map, blocks.map is synced, and only then are the
 * writes waiting on those extents let through. Writers that arrive while
 * a sync runs are served together by the next one, so the cost is two
 * store syncs per batch, not per write.
 *
 * When the session has failed, the worker records that in the store first
 * (the map header, then meta.json) and then releases everything held.
 *
 * It holds no users reference (close flushes it after users drop to zero),
 * so it must not queue itself again: it fails the session with
 * __bdsnap_session_fail().
 *
 * It runs under memalloc_noio, so its reclaim cannot recurse into a
 * tracked device. s->store_busy_since tells the watchdog how long the
 * store has been in the current write or sync.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/sched/mm.h>
#include <linux/jiffies.h>

#include "core.h"

static void bdsnap_settle_all(struct list_head *list)
{
	struct bdsnap_extent *e, *tmp;

	list_for_each_entry_safe(e, tmp, list, qnode) {
		list_del_init(&e->qnode);
		bdsnap_ext_settle(e);
	}
}

static void bdsnap_store_busy(struct bdsnap_session *s, bool busy)
{
	WRITE_ONCE(s->store_busy_since, busy ? jiffies | 1 : 0);
}

/*
 * Append @batch and make it durable: on success every extent of it ends up
 * in @done, durable, for the caller to settle (their writes go). A full
 * record buffer is synced and settled on the way. On an error the rest is
 * left in @batch and @done for the failure path. Returns 0 or the error,
 * *what naming the step. Settling resubmits origin writes, which may wait
 * on the origin: that is not store time for the watchdog.
 */
static int bdsnap_commit(struct bdsnap_session *s, struct list_head *batch,
			 struct list_head *done, const char **what)
{
	struct bdsnap_store *st = &s->store;
	struct bdsnap_extent *e, *tmp;
	int ret;

	list_for_each_entry_safe(e, tmp, batch, qnode) {
		u64 chunks = e->bytes >> s->chunk_shift;

		if (st->nr_pending == BDSNAP_MAX_PENDING) {
			*what = "syncing the store";
			ret = bdsnap_store_sync(s);
			if (ret)
				return ret;
			bdsnap_store_busy(s, false);
			bdsnap_settle_all(done);
			bdsnap_store_busy(s, true);
		}
		*what = "writing blocks.dat";
		ret = bdsnap_store_append(s, e);
		if (ret)
			return ret;
		/* In the page cache now; the memory cap still counts it until synced. */
		bdsnap_ext_pages_free(e);
		list_move_tail(&e->qnode, done);
		atomic64_add(chunks, &s->chunks_saved);
		atomic64_add(e->bytes, &s->bytes_saved);
		atomic64_add(chunks, &bdsnap_total_chunks);
		atomic64_add(e->bytes, &bdsnap_total_bytes);
	}
	*what = "syncing the store";
	return bdsnap_store_sync(s);
}

/* Failed: the store says so before anything unsaved is let through. */
static void bdsnap_record_failure(struct bdsnap_session *s)
{
	int ret;

	if (!s->fail_recorded) {
		bdsnap_store_busy(s, true);
		ret = bdsnap_store_mark_failed(s);
		if (ret)
			pr_err("%s: session %s: cannot record its failure in blocks.map: %pe; after a crash it would read as interrupted\n",
			       s->dev->name, s->id, ERR_PTR(ret));
		/* Best effort: the header is what readers trust. */
		bdsnap_store_write_meta(s);
		bdsnap_store_busy(s, false);
		s->fail_recorded = true;
	}
	bdsnap_cow_release(s);
}

void bdsnap_store_work(struct work_struct *work)
{
	struct bdsnap_session *s = container_of(work, struct bdsnap_session,
						store_work);
	unsigned int noio = memalloc_noio_save();
	unsigned long flags;

	for (;;) {
		const char *what = NULL;
		LIST_HEAD(batch);
		LIST_HEAD(done);
		bool open, more;
		int ret;

		spin_lock_irqsave(&s->lock, flags);
		list_splice_init(&s->store_queue, &batch);
		open = s->state == BDSNAP_SESSION_OPEN;
		spin_unlock_irqrestore(&s->lock, flags);

		/* A count the mount path took after publication (session.c). */
		if (xchg(&s->meta_stale, false) && open) {
			bdsnap_store_busy(s, true);
			ret = bdsnap_store_write_meta(s);
			bdsnap_store_busy(s, false);
			if (ret && __bdsnap_session_fail(s, ret, "writing meta.json"))
				open = false;
		}

		if (open && !list_empty(&batch)) {
			bdsnap_store_busy(s, true);
			ret = bdsnap_commit(s, &batch, &done, &what);
			bdsnap_store_busy(s, false);
			if (ret)
				__bdsnap_session_fail(s, ret, what);
		}
		if (READ_ONCE(s->state) != BDSNAP_SESSION_OPEN)
			bdsnap_record_failure(s);
		bdsnap_settle_all(&done);
		bdsnap_settle_all(&batch);

		spin_lock_irqsave(&s->lock, flags);
		more = !list_empty(&s->store_queue);
		spin_unlock_irqrestore(&s->lock, flags);
		if (!more)
			break;
	}
	memalloc_noio_restore(noio);
}
