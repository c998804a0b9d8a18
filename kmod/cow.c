// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the copy-on-write engine.
 *
 * A write bio to a device with a session becomes an op that owns the bio
 * until it is safe to send on. For each session it touches (normally one;
 * several when a whole-disk write covers activated partitions) the op walks
 * its chunk range:
 *
 *  - a chunk already claimed and no longer being read: nothing to do;
 *  - a chunk being read for another op: the op parks on that read and is
 *    resumed when it completes (first write wins: its pre-image is the
 *    one that counts, and our write must not overtake the read);
 *  - unclaimed chunks: claimed as one extent (up to 1 MiB of a contiguous
 *    run), memory is reserved, and an asynchronous read of their current
 *    content is issued. Never waited on here: when current->bio_list is
 *    set a nested submit only queues, so waiting would deadlock.
 *
 * When all its reads are done the bio is resubmitted, from a worker (or,
 * if nothing had to be read, right away). A write whose chunks are all
 * saved passes straight through.
 *
 * Flush and FUA: the op also waits until every extent claimed so far in
 * the session (so every pre-image of a write that completed before it,
 * and its own) is in blocks.dat and blocks.map and both are fsynced.
 *
 * Memory: pre-images in memory are capped (inflight_limit_mb). An op that
 * would exceed the cap parks on a FIFO throttle list (its writer waits)
 * and is resumed as the store workers free memory; a REQ_NOWAIT bio gets
 * EAGAIN instead. If the head of the list waits longer than
 * BDSNAP_STALL_SECS, the store is considered stuck and the session holding
 * the most memory fails, which frees it.
 *
 * Failure (store ENOSPC/EIO, origin read error, allocation failure): the
 * session goes to FAILED, everything it holds is dropped or released at
 * once, and from then on its writes pass straight through. Origin I/O is
 * never lost, failed or held indefinitely by us.
 *
 * Contexts: the analysis runs in task context only (the hook, or cow_wq);
 * read completions are moved to cow_wq at once; store writes run on
 * store_wq under memalloc_noio so their reclaim cannot recurse into a
 * tracked device.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/highmem.h>
#include <linux/interval_tree_generic.h>
#include <linux/sched/mm.h>
#include <linux/preempt.h>
#include <linux/major.h>

#include "core.h"

#define EXT_START(e)	((e)->first)
#define EXT_LAST(e)	((e)->last)
INTERVAL_TREE_DEFINE(struct bdsnap_extent, rb, u64, subtree_last,
		     EXT_START, EXT_LAST, static, ext_tree)

/* Most sessions one bio can touch (overlapping activated partitions). */
#define BDSNAP_MAX_TARGETS	8

enum { OP_DONE, OP_PARKED, OP_THROTTLED };

static struct kmem_cache *bdsnap_ext_cache;

static LIST_HEAD(bdsnap_throttle_list);
static DEFINE_SPINLOCK(bdsnap_throttle_lock);
static struct work_struct bdsnap_throttle_work;
static struct delayed_work bdsnap_stall_work;

static void bdsnap_op_work(struct work_struct *work);

/* ---- memory accounting ---- */

static u64 bdsnap_limit(void)
{
	return (u64)bdsnap_inflight_limit_mb << 20;
}

/* Always succeeds when nothing is held, so one op can always progress. */
static bool bdsnap_mem_reserve(u64 bytes)
{
	s64 cur = atomic64_read(&bdsnap_inflight_bytes), peak;

	do {
		if (cur && cur + bytes > bdsnap_limit())
			return false;
	} while (!atomic64_try_cmpxchg(&bdsnap_inflight_bytes, &cur, cur + bytes));

	peak = atomic64_read(&bdsnap_inflight_peak);
	while (cur + (s64)bytes > peak &&
	       !atomic64_try_cmpxchg(&bdsnap_inflight_peak, &peak, cur + bytes))
		;
	return true;
}

static void bdsnap_mem_release(u64 bytes)
{
	atomic64_sub(bytes, &bdsnap_inflight_bytes);
	/* Pairs with the barrier in bdsnap_throttle_park(). */
	smp_mb__after_atomic();
	if (!list_empty_careful(&bdsnap_throttle_list))
		queue_work(bdsnap_cow_wq, &bdsnap_throttle_work);
}

/* ---- ops ---- */

static void bdsnap_op_finish(struct bdsnap_op *op)
{
	struct bio *bio = op->bio;
	unsigned int i;

	if (op->spare)
		kmem_cache_free(bdsnap_ext_cache, op->spare);
	for (i = 0; i < op->nr; i++)
		bdsnap_session_put(op->t[i].s);
	kfree(op);
	/* From this module: the hook lets it through to the device. */
	submit_bio_noacct(bio);
}

static void bdsnap_op_put(struct bdsnap_op *op)
{
	if (atomic_dec_and_test(&op->pending))
		bdsnap_op_finish(op);
}

/* ---- extents ---- */

static void bdsnap_ext_free(struct bdsnap_extent *e)
{
	struct bdsnap_session *s = e->s;
	unsigned long flags;
	u32 i;

	if (e->bvec) {
		for (i = 0; i < e->nr_pages; i++)
			if (e->bvec[i].bv_page)
				__free_page(e->bvec[i].bv_page);
		kfree(e->bvec);
	}
	spin_lock_irqsave(&s->lock, flags);
	s->pending_bytes -= e->bytes;
	spin_unlock_irqrestore(&s->lock, flags);
	bdsnap_mem_release(e->bytes);
	kmem_cache_free(bdsnap_ext_cache, e);
	bdsnap_session_put(s);
}

/* Read completed (or could not be issued): process context from here on. */
static void bdsnap_ext_done(struct work_struct *work)
{
	struct bdsnap_extent *e = container_of(work, struct bdsnap_extent, work);
	struct bdsnap_session *s = e->s;
	struct bdsnap_op *op = e->op, *w, *tmp;
	blk_status_t status = e->status;
	unsigned long flags;
	LIST_HEAD(resume);
	bool keep = false;

	if (e->bio.bi_end_io)
		bio_uninit(&e->bio);

	spin_lock_irqsave(&s->lock, flags);
	ext_tree_remove(e, &s->inflight);
	list_splice_init(&e->waiters, &resume);
	e->op = NULL;
	if (!status && s->state == BDSNAP_SESSION_OPEN) {
		list_add_tail(&e->qnode, &s->store_queue);
		keep = true;
	} else {
		list_del(&e->node);
	}
	spin_unlock_irqrestore(&s->lock, flags);

	/* The op's reference keeps s alive until bdsnap_op_put() below. */
	if (status)
		bdsnap_session_fail(s, blk_status_to_errno(status),
				    "reading a pre-image from the origin");
	if (keep)
		queue_work(bdsnap_store_wq, &s->store_work);
	else
		bdsnap_ext_free(e);

	list_for_each_entry_safe(w, tmp, &resume, park) {
		list_del_init(&w->park);
		queue_work(bdsnap_cow_wq, &w->work);
	}
	bdsnap_op_put(op);
}

static void bdsnap_ext_end_io(struct bio *bio)
{
	struct bdsnap_extent *e = bio->bi_private;

	e->status = bio->bi_status;
	INIT_WORK(&e->work, bdsnap_ext_done);
	queue_work(bdsnap_cow_wq, &e->work);
}

static void bdsnap_ext_start_work(struct work_struct *work);

/* Allocate the pages and issue the read. Never waits for the read. */
static void bdsnap_ext_start(struct bdsnap_extent *e, gfp_t gfp)
{
	u32 i, off;

	if (!e->bvec) {
		e->bvec = kcalloc(e->nr_pages, sizeof(*e->bvec), gfp | __GFP_NOWARN);
		if (!e->bvec)
			goto nomem;
	}
	for (i = 0, off = 0; i < e->nr_pages; i++, off += PAGE_SIZE) {
		gfp_t zero = off + PAGE_SIZE > e->valid ? __GFP_ZERO : 0;

		if (e->bvec[i].bv_page)
			continue;
		e->bvec[i].bv_page = alloc_page(gfp | zero | __GFP_NOWARN);
		if (!e->bvec[i].bv_page)
			goto nomem;
	}

	bio_init(&e->bio, e->bdev, e->bvec, e->nr_pages, REQ_OP_READ | REQ_SYNC);
	e->bio.bi_iter.bi_sector = e->sector;
	e->bio.bi_end_io = bdsnap_ext_end_io;
	e->bio.bi_private = e;
	/* Past the end of the device there is nothing to read: zeroes. */
	for (i = 0, off = 0; off < e->valid; i++, off += PAGE_SIZE)
		__bio_add_page(&e->bio, e->bvec[i].bv_page,
			       min_t(u32, PAGE_SIZE, e->valid - off), 0);
	submit_bio_noacct(&e->bio);
	return;

nomem:
	if (!gfpflags_allow_blocking(gfp)) {
		INIT_WORK(&e->work, bdsnap_ext_start_work);
		queue_work(bdsnap_cow_wq, &e->work);
		return;
	}
	bdsnap_session_fail(e->s, -ENOMEM, "allocating pre-image memory");
	e->status = BLK_STS_RESOURCE;
	INIT_WORK(&e->work, bdsnap_ext_done);
	queue_work(bdsnap_cow_wq, &e->work);
}

static void bdsnap_ext_start_work(struct work_struct *work)
{
	struct bdsnap_extent *e = container_of(work, struct bdsnap_extent, work);
	unsigned int noio = memalloc_noio_save();

	bdsnap_ext_start(e, GFP_NOIO);
	memalloc_noio_restore(noio);
}

/* ---- the throttle ---- */

static void bdsnap_throttle_park(struct bdsnap_op *op)
{
	unsigned long flags;
	bool first;

	spin_lock_irqsave(&bdsnap_throttle_lock, flags);
	first = list_empty(&bdsnap_throttle_list);
	op->parked_at = jiffies;
	/* Resumed by the throttle and still short: keep its place. */
	if (op->from_throttle)
		list_add(&op->park, &bdsnap_throttle_list);
	else
		list_add_tail(&op->park, &bdsnap_throttle_list);
	spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);
	if (first)
		mod_delayed_work(bdsnap_cow_wq, &bdsnap_stall_work,
				 BDSNAP_STALL_SECS * HZ);
}

/* After parking: memory freed just before we parked must not be missed. */
static void bdsnap_throttle_recheck(void)
{
	smp_mb();
	if (atomic64_read(&bdsnap_inflight_bytes) < bdsnap_limit())
		queue_work(bdsnap_cow_wq, &bdsnap_throttle_work);
}

static int bdsnap_op_run(struct bdsnap_op *op);

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

/* The throttle's head has waited too long: the store is not draining. */
static void bdsnap_stall_fn(struct work_struct *work)
{
	struct bdsnap_session *victim = NULL;
	struct bdsnap_op *op;
	struct bdsnap_dev *dev;
	unsigned long flags;
	bool stalled, more;
	u64 most = 0;

	spin_lock_irqsave(&bdsnap_throttle_lock, flags);
	op = list_first_entry_or_null(&bdsnap_throttle_list, struct bdsnap_op, park);
	more = op != NULL;
	stalled = op && time_after(jiffies, op->parked_at + BDSNAP_STALL_SECS * HZ);
	spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);

	if (stalled) {
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
					    "the store made no progress; pre-images held too long");
			bdsnap_session_put(victim);
		}
	}
	if (more)
		queue_delayed_work(bdsnap_cow_wq, &bdsnap_stall_work, HZ);
}

/* ---- the analysis ---- */

/* Allocation failed where we may not sleep: finish in the worker. */
static int bdsnap_op_defer(struct bdsnap_op *op)
{
	op->gfp = GFP_NOIO;
	queue_work(bdsnap_cow_wq, &op->work);
	return OP_PARKED;
}

static int bdsnap_oppart_run(struct bdsnap_op *op, struct bdsnap_oppart *t,
			     struct list_head *start)
{
	struct bdsnap_session *s = t->s;
	u64 max_chunks = max(1U, BDSNAP_EXTENT_MAX >> s->chunk_shift);
	struct bdsnap_extent *e;
	unsigned long flags;
	int ret;

	if (t->cursor > t->last || READ_ONCE(s->state) != BDSNAP_SESSION_OPEN)
		return OP_DONE;

	ret = bdsnap_chunkmap_prepare(&s->map, t->cursor, t->last, op->gfp);
	if (ret) {
		if (!gfpflags_allow_blocking(op->gfp))
			return bdsnap_op_defer(op);
		bdsnap_session_fail(s, ret, "allocating the chunk index");
		return OP_DONE;
	}

	for (;;) {
		u64 c, n, end, bytes;

		spin_lock_irqsave(&s->lock, flags);
		if (s->state != BDSNAP_SESSION_OPEN || t->cursor > t->last) {
			t->cursor = t->last + 1;
			spin_unlock_irqrestore(&s->lock, flags);
			return OP_DONE;
		}
		e = ext_tree_iter_first(&s->inflight, t->cursor, t->last);
		if (e && e->first <= t->cursor) {
			if (e->op == op) {
				t->cursor = e->last + 1;
				spin_unlock_irqrestore(&s->lock, flags);
				continue;
			}
			/* Someone else's read of this chunk is in flight. */
			list_add_tail(&op->park, &e->waiters);
			spin_unlock_irqrestore(&s->lock, flags);
			return OP_PARKED;
		}
		end = e ? e->first - 1 : t->last;
		c = bdsnap_chunkmap_next_clear(&s->map, t->cursor, end);
		if (c > end) {
			t->cursor = end + 1;
			spin_unlock_irqrestore(&s->lock, flags);
			continue;
		}
		if (!op->spare) {
			spin_unlock_irqrestore(&s->lock, flags);
			op->spare = kmem_cache_zalloc(bdsnap_ext_cache,
						      op->gfp | __GFP_NOWARN);
			if (op->spare)
				continue;
			if (!gfpflags_allow_blocking(op->gfp))
				return bdsnap_op_defer(op);
			bdsnap_session_fail(s, -ENOMEM, "allocating an extent");
			return OP_DONE;
		}
		n = bdsnap_chunkmap_clear_run(&s->map, c, min(end, c + max_chunks - 1));
		bytes = n << s->chunk_shift;
		/* FIFO: nobody overtakes a writer that waits for memory. */
		if ((!op->from_throttle &&
		     !list_empty_careful(&bdsnap_throttle_list)) ||
		    !bdsnap_mem_reserve(bytes)) {
			t->cursor = c;
			bdsnap_throttle_park(op);
			spin_unlock_irqrestore(&s->lock, flags);
			bdsnap_throttle_recheck();
			return OP_THROTTLED;
		}

		e = op->spare;
		op->spare = NULL;
		e->first = c;
		e->last = c + n - 1;
		e->s = s;
		e->op = op;
		e->seq = ++s->claim_seq;
		e->bytes = bytes;
		e->valid = min_t(u64, bytes, s->size - (c << s->chunk_shift));
		e->nr_pages = DIV_ROUND_UP(bytes, PAGE_SIZE);
		/* Through the whole disk: a chunk may straddle a partition start. */
		e->bdev = bdev_whole(op->bio->bi_bdev);
		e->sector = s->span.start + (c << (s->chunk_shift - SECTOR_SHIFT));
		INIT_LIST_HEAD(&e->waiters);
		bdsnap_chunkmap_set(&s->map, c, n);
		ext_tree_insert(e, &s->inflight);
		list_add_tail(&e->node, &s->outstanding);
		s->pending_bytes += bytes;
		bdsnap_session_get(s);
		atomic_inc(&op->pending);
		t->cursor = c + n;
		spin_unlock_irqrestore(&s->lock, flags);
		list_add_tail(&e->qnode, start);
	}
}

/* After the analysis: flushes wait for every pre-image claimed so far. */
static void bdsnap_op_flush_register(struct bdsnap_op *op)
{
	unsigned int i;

	for (i = 0; i < op->nr; i++) {
		struct bdsnap_oppart *t = &op->t[i];
		struct bdsnap_session *s = t->s;
		unsigned long flags;
		bool kick = false;

		if (!t->flush)
			continue;
		spin_lock_irqsave(&s->lock, flags);
		if (s->state == BDSNAP_SESSION_OPEN && s->claim_seq > s->synced_seq) {
			t->flush_seq = s->claim_seq;
			list_add_tail(&t->flush_node, &s->flush_waiters);
			atomic_inc(&op->pending);
			kick = true;
		}
		spin_unlock_irqrestore(&s->lock, flags);
		if (kick)
			queue_work(bdsnap_store_wq, &s->store_work);
	}
}

/*
 * Continue the analysis where it stopped. Only one context runs it at a
 * time: whoever parks the op hands it over to whoever resumes it.
 */
static int bdsnap_op_run(struct bdsnap_op *op)
{
	struct bdsnap_extent *e, *tmp;
	gfp_t gfp = op->gfp;
	LIST_HEAD(start);
	int r = OP_DONE;

	while (op->cur < op->nr) {
		r = bdsnap_oppart_run(op, &op->t[op->cur], &start);
		if (r != OP_DONE)
			break;
		op->cur++;
	}
	/*
	 * The op may already be running elsewhere if it parked; the
	 * extents claimed here are ours to start, and each holds a pending
	 * reference, so the op stays.
	 */
	list_for_each_entry_safe(e, tmp, &start, qnode) {
		list_del_init(&e->qnode);
		bdsnap_ext_start(e, gfp);
	}
	if (r == OP_DONE) {
		bdsnap_op_flush_register(op);
		bdsnap_op_put(op);	/* the analysis reference */
	}
	return r;
}

static void bdsnap_op_work(struct work_struct *work)
{
	struct bdsnap_op *op = container_of(work, struct bdsnap_op, work);
	unsigned int noio = memalloc_noio_save();

	op->from_throttle = false;
	bdsnap_op_run(op);
	memalloc_noio_restore(noio);
}

/* ---- the entry point from the submit_bio_noacct hook ---- */

static bool bdsnap_range(const struct bdsnap_session *s, sector_t abs,
			 sector_t nr, u64 *first, u64 *last)
{
	sector_t lo = max(abs, s->span.start);
	sector_t hi = min(abs + nr, s->span.start + s->span.nr);

	if (lo >= hi)
		return false;
	*first = ((u64)(lo - s->span.start) << SECTOR_SHIFT) >> s->chunk_shift;
	*last = (((u64)(hi - s->span.start) << SECTOR_SHIFT) - 1) >> s->chunk_shift;
	return true;
}

static bool bdsnap_overlaps(const struct bdsnap_span *span, dev_t disk,
			    sector_t abs, sector_t nr)
{
	return span->disk == disk && abs < span->start + span->nr &&
	       span->start < abs + nr;
}

/*
 * Does this bio concern session s: data in its range, or a flush sent to a
 * block device that overlaps it (fl: that device's span, NULL if no flush)?
 * A flush sent to another partition of the same disk is not the origin's:
 * waiting on it would also deadlock a store that lives there.
 */
static bool bdsnap_wants(const struct bdsnap_session *s, dev_t disk,
			 sector_t abs, sector_t nr, const struct bdsnap_span *fl,
			 u64 *first, u64 *last, bool *data)
{
	if (s->span.disk != disk)
		return false;
	*data = nr && bdsnap_range(s, abs, nr, first, last);
	return *data || (fl && bdsnap_overlaps(fl, disk, s->span.start, s->span.nr));
}

/*
 * More sessions on this disk than one op can serve: fail the ones left
 * out, so that nothing is missed silently. Absurd configurations only.
 */
static void bdsnap_fail_overflow(const struct bdsnap_oppart *t, unsigned int n,
				 dev_t disk, sector_t abs, sector_t nr,
				 const struct bdsnap_span *fl)
{
	for (;;) {
		struct bdsnap_session *victim = NULL;
		struct bdsnap_dev *dev;
		unsigned int i;

		rcu_read_lock();
		list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
			struct bdsnap_session *s = rcu_dereference(dev->session);
			u64 first, last;
			bool data;

			if (!s || READ_ONCE(s->state) != BDSNAP_SESSION_OPEN ||
			    !bdsnap_wants(s, disk, abs, nr, fl, &first, &last, &data))
				continue;
			for (i = 0; i < n && t[i].s != s; i++)
				;
			if (i == n) {
				bdsnap_session_get(s);
				victim = s;
				break;
			}
		}
		rcu_read_unlock();
		if (!victim)
			return;
		bdsnap_session_fail(victim, -E2BIG,
				    "a write covers too many activated devices");
		bdsnap_session_put(victim);
	}
}

/*
 * Take the bio if a session needs it; false: the caller submits it as is.
 * Unmounted writes to activated devices are counted on the way.
 */
bool bdsnap_cow_submit(struct bio *bio)
{
	struct bdsnap_oppart t[BDSNAP_MAX_TARGETS];
	struct gendisk *disk = bio->bi_bdev->bd_disk;
	dev_t ddev = bdsnap_disk_devt(disk);
	bool flush = bio->bi_opf & (REQ_PREFLUSH | REQ_FUA);
	u32 len = bio->bi_iter.bi_size;
	bool need_mem = false, overflow = false, atomic_ctx;
	struct bdsnap_span bspan, *fl = NULL;
	struct bdsnap_dev *dev;
	struct bdsnap_op *op;
	unsigned int n = 0, i;
	sector_t abs, nr;
	gfp_t gfp;

	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
	case REQ_OP_WRITE_ZEROES:
		break;
	default:
		return false;	/* zoned devices are not supported */
	}
	if (!len && !flush)
		return false;
	/* A remapped bio (split remainder) already carries disk sectors. */
	abs = bio->bi_iter.bi_sector +
	      (bio_flagged(bio, BIO_REMAPPED) ? 0 : bio->bi_bdev->bd_start_sect);
	nr = len >> SECTOR_SHIFT;
	if (flush) {
		bspan.disk = ddev;
		bspan.start = bio->bi_bdev->bd_start_sect;
		bspan.nr = bdev_nr_sectors(bio->bi_bdev);
		fl = &bspan;
	}

	rcu_read_lock();
	list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
		struct bdsnap_session *s = rcu_dereference(dev->session);
		u64 first = 1, last = 0;
		bool data;

		if (s && s->span.disk == ddev) {
			if (!bdsnap_wants(s, ddev, abs, nr, fl, &first, &last, &data))
				continue;
			if (n == BDSNAP_MAX_TARGETS) {
				overflow = true;	/* failed below, not under RCU */
				continue;
			}
			bdsnap_session_get(s);
			t[n].s = s;
			t[n].first = first;
			t[n].last = last;
			t[n].flush = flush;
			need_mem |= data;
			n++;
			continue;
		}
		if (len && dev->kind == BDSNAP_KIND_BLOCK &&
		    bdsnap_overlaps(&dev->span, ddev, abs, nr))
			atomic64_inc(&dev->unmounted_writes);
	}
	if (len && disk->major == LOOP_MAJOR &&
	    atomic_read(&bdsnap_nr_file_devs)) {
		dev = bdsnap_loop_lookup(disk, true);
		if (dev) {
			struct bdsnap_session *s = rcu_dereference(dev->session);

			if (!s || s->span.disk != ddev)
				atomic64_inc(&dev->unmounted_writes);
		}
	}
	rcu_read_unlock();
	if (unlikely(overflow))
		bdsnap_fail_overflow(t, n, ddev, abs, nr, fl);
	if (!n)
		return false;

	if ((bio->bi_opf & REQ_NOWAIT) && need_mem &&
	    atomic64_read(&bdsnap_inflight_bytes) >= bdsnap_limit()) {
		for (i = 0; i < n; i++)
			bdsnap_session_put(t[i].s);
		bio_wouldblock_error(bio);
		return true;
	}

	/*
	 * submit_bio may sleep, so its callers can; REQ_NOWAIT callers do not
	 * want to. Anything that cannot (softirq, preemption off) defers.
	 */
	atomic_ctx = !in_task() || !preemptible();
	gfp = (bio->bi_opf & REQ_NOWAIT) || atomic_ctx ? GFP_NOWAIT : GFP_NOIO;
	op = kmalloc(struct_size(op, t, n), gfp | __GFP_NOWARN);
	if (!op) {
		for (i = 0; i < n; i++) {
			bdsnap_session_fail(t[i].s, -ENOMEM, "allocating a held write");
			bdsnap_session_put(t[i].s);
		}
		return false;
	}
	op->bio = bio;
	atomic_set(&op->pending, 1);
	op->nr = n;
	op->cur = 0;
	op->from_throttle = false;
	op->gfp = gfp;
	op->parked_at = 0;
	op->spare = NULL;
	INIT_LIST_HEAD(&op->park);
	INIT_WORK(&op->work, bdsnap_op_work);
	for (i = 0; i < n; i++) {
		op->t[i] = t[i];
		op->t[i].op = op;
		op->t[i].cursor = t[i].first;
		op->t[i].flush_seq = 0;
		INIT_LIST_HEAD(&op->t[i].flush_node);
	}

	/* The analysis may allocate; an atomic submitter hands it over. */
	if (atomic_ctx)
		bdsnap_op_defer(op);
	else
		bdsnap_op_run(op);
	return true;
}

/* ---- the store worker ---- */

/* Extents <= the returned seq have their data in blocks.dat. */
static u64 bdsnap_stable_seq(struct bdsnap_session *s)
{
	struct bdsnap_extent *first;

	lockdep_assert_held(&s->lock);
	first = list_first_entry_or_null(&s->outstanding, struct bdsnap_extent, node);
	return first ? first->seq - 1 : s->claim_seq;
}

static void bdsnap_release_flushes(struct bdsnap_session *s, u64 upto, bool all)
{
	struct bdsnap_oppart *t, *tmp;
	unsigned long flags;
	LIST_HEAD(done);

	spin_lock_irqsave(&s->lock, flags);
	list_for_each_entry_safe(t, tmp, &s->flush_waiters, flush_node) {
		if (!all && t->flush_seq > upto)
			break;
		list_move_tail(&t->flush_node, &done);
	}
	spin_unlock_irqrestore(&s->lock, flags);
	list_for_each_entry_safe(t, tmp, &done, flush_node) {
		list_del_init(&t->flush_node);
		bdsnap_op_put(t->op);
	}
}

/*
 * Drain captured pre-images into blocks.dat, their records into
 * blocks.map, and make them durable when a flush waits. One instance per
 * session at a time (a work item does not run concurrently with itself).
 * It holds no users reference (close flushes it after users drop to zero),
 * so it must not queue itself again: it fails the session with
 * __bdsnap_session_fail() and writes meta.json itself.
 */
void bdsnap_store_work(struct work_struct *work)
{
	struct bdsnap_session *s = container_of(work, struct bdsnap_session,
						store_work);
	unsigned int noio = memalloc_noio_save();
	unsigned long flags;
	bool failed;

	for (;;) {
		struct bdsnap_extent *e, *tmp;
		LIST_HEAD(batch);
		bool need_sync;
		u64 stable = 0;
		int ret;

		spin_lock_irqsave(&s->lock, flags);
		list_splice_init(&s->store_queue, &batch);
		failed = s->state != BDSNAP_SESSION_OPEN;
		spin_unlock_irqrestore(&s->lock, flags);

		list_for_each_entry_safe(e, tmp, &batch, qnode) {
			list_del_init(&e->qnode);
			if (!failed) {
				if (s->store.nr_pending == s->store.max_pending) {
					ret = bdsnap_store_sync(s, false);
					if (ret) {
						__bdsnap_session_fail(s, ret, "writing blocks.map");
						failed = true;
					}
				}
			}
			if (!failed) {
				ret = bdsnap_store_append(s, e);
				if (ret) {
					__bdsnap_session_fail(s, ret, "writing blocks.dat");
					failed = true;
				} else {
					u64 chunks = e->bytes >> s->chunk_shift;

					atomic64_add(chunks, &s->chunks_saved);
					atomic64_add(e->bytes, &s->bytes_saved);
					atomic64_add(chunks, &bdsnap_total_chunks);
					atomic64_add(e->bytes, &bdsnap_total_bytes);
				}
			}
			spin_lock_irqsave(&s->lock, flags);
			list_del(&e->node);
			spin_unlock_irqrestore(&s->lock, flags);
			bdsnap_ext_free(e);
		}

		spin_lock_irqsave(&s->lock, flags);
		failed = s->state != BDSNAP_SESSION_OPEN;
		need_sync = false;
		if (!failed && !list_empty(&s->flush_waiters)) {
			struct bdsnap_oppart *t = list_first_entry(&s->flush_waiters,
					struct bdsnap_oppart, flush_node);

			stable = bdsnap_stable_seq(s);
			need_sync = t->flush_seq <= stable;
		}
		spin_unlock_irqrestore(&s->lock, flags);

		if (need_sync) {
			/* Data, then map, then both fsynced (FORMAT.md rule 4). */
			ret = bdsnap_store_sync(s, true);
			if (ret) {
				__bdsnap_session_fail(s, ret, "syncing the store");
				failed = true;
			} else {
				spin_lock_irqsave(&s->lock, flags);
				if (stable > s->synced_seq)
					s->synced_seq = stable;
				spin_unlock_irqrestore(&s->lock, flags);
				bdsnap_release_flushes(s, stable, false);
			}
		}

		spin_lock_irqsave(&s->lock, flags);
		if (list_empty(&s->store_queue)) {
			spin_unlock_irqrestore(&s->lock, flags);
			break;
		}
		spin_unlock_irqrestore(&s->lock, flags);
	}

	if (failed && !s->meta_failed) {
		s->meta_failed = true;
		bdsnap_store_write_meta(s);
	}
	memalloc_noio_restore(noio);
}

/* ---- session setup and failure ---- */

void bdsnap_cow_session_init(struct bdsnap_session *s)
{
	s->inflight = RB_ROOT_CACHED;
	INIT_LIST_HEAD(&s->outstanding);
	INIT_LIST_HEAD(&s->store_queue);
	INIT_LIST_HEAD(&s->flush_waiters);
	INIT_WORK(&s->store_work, bdsnap_store_work);
}

/*
 * The session has just gone FAILED: release everything it holds. Extents
 * still being read are dropped when their read completes (their pages are
 * in use until then); writes waiting behind them go now.
 */
void bdsnap_cow_fail(struct bdsnap_session *s)
{
	struct bdsnap_extent *e, *etmp;
	struct bdsnap_op *op, *otmp;
	unsigned long flags;
	LIST_HEAD(drop);
	LIST_HEAD(resume);

	spin_lock_irqsave(&s->lock, flags);
	list_for_each_entry_safe(e, etmp, &s->store_queue, qnode) {
		list_del(&e->node);
		list_move_tail(&e->qnode, &drop);
	}
	for (e = ext_tree_iter_first(&s->inflight, 0, U64_MAX); e;
	     e = ext_tree_iter_next(e, 0, U64_MAX))
		list_splice_init(&e->waiters, &resume);
	spin_unlock_irqrestore(&s->lock, flags);

	spin_lock_irqsave(&bdsnap_throttle_lock, flags);
	list_for_each_entry_safe(op, otmp, &bdsnap_throttle_list, park) {
		if (op->cur < op->nr && op->t[op->cur].s == s)
			list_move_tail(&op->park, &resume);
	}
	spin_unlock_irqrestore(&bdsnap_throttle_lock, flags);

	list_for_each_entry_safe(e, etmp, &drop, qnode) {
		list_del_init(&e->qnode);
		bdsnap_ext_free(e);
	}
	bdsnap_release_flushes(s, 0, true);
	list_for_each_entry_safe(op, otmp, &resume, park) {
		list_del_init(&op->park);
		queue_work(bdsnap_cow_wq, &op->work);
	}
}

int bdsnap_cow_init(void)
{
	bdsnap_ext_cache = KMEM_CACHE(bdsnap_extent, 0);
	if (!bdsnap_ext_cache)
		return -ENOMEM;
	INIT_WORK(&bdsnap_throttle_work, bdsnap_throttle_fn);
	INIT_DELAYED_WORK(&bdsnap_stall_work, bdsnap_stall_fn);
	return 0;
}

void bdsnap_cow_exit(void)
{
	cancel_delayed_work_sync(&bdsnap_stall_work);
	cancel_work_sync(&bdsnap_throttle_work);
	kmem_cache_destroy(bdsnap_ext_cache);
}
