// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the copy-on-write state machine of held writes (ops) and the
 * pre-images they wait for (extents).
 *
 * A write bio to a device with a session becomes an op that owns the bio
 * until it is safe to send on (tracker.c decides which sessions it
 * concerns). For each such session the op walks its chunk range:
 *
 *  - a chunk saved and durable: nothing to do (a bitmap lookup);
 *  - a chunk whose pre-image is not yet durable (claimed by another op):
 *    the op parks on that extent and is resumed when it is durable (first
 *    write wins: its pre-image is the one that counts, and no later write
 *    may reach the chunk before it is saved);
 *  - unclaimed chunks: claimed as one extent (up to 1 MiB of a contiguous
 *    run), memory is reserved, and an asynchronous read of their current
 *    content is issued. Never waited on here: when current->bio_list is
 *    set a nested submit only queues, so waiting would deadlock.
 *
 * Write-ahead: each extent holds its claiming op until the store worker
 * has made the extent durable (data in blocks.dat, record in blocks.map,
 * both synced; store_worker.c). Only then is the bio resubmitted. So no
 * write reaches a saved chunk before its pre-image is on stable storage,
 * and origin flushes need not wait for anything.
 *
 * Failure (store ENOSPC/EIO, origin read error, the watchdog): the session
 * goes FAILED and "failing". Writes wait until the store worker has
 * recorded the failure in the store (so the session never reads as exact
 * after a crash), then everything is released and later writes pass
 * straight through. The watchdog bounds that wait (throttle.c).
 *
 * Memory: ops, extents, their bvec arrays and pages come from mempools,
 * so under memory pressure a GFP_NOIO allocation waits for one of ours to
 * be returned (the store worker returns pages as it appends) instead of
 * failing the session.
 *
 * Contexts: the analysis runs in task context only (the hook, or cow_wq);
 * read completions are moved to store_wq at once, so that an analysis
 * waiting in a mempool on cow_wq cannot hold up the completions that
 * refill it.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mempool.h>
#include <linux/highmem.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/interval_tree_generic.h>
#include <linux/sched/mm.h>
#include <linux/jiffies.h>

#include "core.h"

#define EXT_START(e)	((e)->first)
#define EXT_LAST(e)	((e)->last)
INTERVAL_TREE_DEFINE(struct bdsnap_extent, rb, u64, subtree_last,
		     EXT_START, EXT_LAST, static __maybe_unused, ext_tree)

/* Reserves: enough for a few ops and one largest extent in flight. */
#define BDSNAP_POOL_OPS		16
#define BDSNAP_EXT_PAGES	(BDSNAP_EXTENT_MAX / PAGE_SIZE)

static struct kmem_cache *bdsnap_ext_cache;
static mempool_t *bdsnap_op_pool, *bdsnap_ext_pool, *bdsnap_bvec_pool;
static mempool_t *bdsnap_page_pool;

static void bdsnap_op_work(struct work_struct *work);

/* ---- ops ---- */

struct bdsnap_op *bdsnap_op_alloc(struct bio *bio, unsigned int nr, gfp_t gfp)
{
	struct bdsnap_op *op;

	if (WARN_ON_ONCE(nr > BDSNAP_MAX_TARGETS))
		return NULL;
	op = mempool_alloc(bdsnap_op_pool, gfp | __GFP_NOWARN);
	if (!op)
		return NULL;
	op->bio = bio;
	atomic_set(&op->pending, 1);	/* the analysis */
	op->nr = nr;
	op->cur = 0;
	op->from_throttle = false;
	op->gfp = gfp;
	op->parked_at = 0;
	op->spare = NULL;
	INIT_LIST_HEAD(&op->park);
	INIT_WORK(&op->work, bdsnap_op_work);
	return op;
}

static void bdsnap_op_finish(struct bdsnap_op *op)
{
	struct bio *bio = op->bio;
	unsigned int i;

	if (op->spare)
		mempool_free(op->spare, bdsnap_ext_pool);
	for (i = 0; i < op->nr; i++)
		bdsnap_session_put(op->t[i].s);
	mempool_free(op, bdsnap_op_pool);
	/* From this module: the hook lets it through to the device. */
	submit_bio_noacct(bio);
}

static void bdsnap_op_finish_work(struct work_struct *work)
{
	bdsnap_op_finish(container_of(work, struct bdsnap_op, work));
}

static void bdsnap_op_put(struct bdsnap_op *op)
{
	if (atomic_dec_and_test(&op->pending))
		bdsnap_op_finish(op);
}

/*
 * For callers under a spinlock: the resubmission, which may sleep, goes to
 * the worker. op->work is idle once pending is zero (the analysis holds a
 * reference while it may be queued).
 */
static void bdsnap_op_put_locked(struct bdsnap_op *op)
{
	if (atomic_dec_and_test(&op->pending)) {
		INIT_WORK(&op->work, bdsnap_op_finish_work);
		queue_work(bdsnap_cow_wq, &op->work);
	}
}

static void bdsnap_resume(struct list_head *ops)
{
	struct bdsnap_op *op, *tmp;

	list_for_each_entry_safe(op, tmp, ops, park) {
		list_del_init(&op->park);
		queue_work(bdsnap_cow_wq, &op->work);
	}
}

/* ---- extents ---- */

/* The pre-image is in the store (or will never be): its pages can go. */
void bdsnap_ext_pages_free(struct bdsnap_extent *e)
{
	u32 i;

	if (!e->bvec)
		return;
	for (i = 0; i < e->nr_pages; i++)
		if (e->bvec[i].bv_page)
			mempool_free(e->bvec[i].bv_page, bdsnap_page_pool);
	mempool_free(e->bvec, bdsnap_bvec_pool);
	e->bvec = NULL;
}

/*
 * Durable, or dropped by a failed session: its writes may go. The caller
 * owns @e (the store worker, or the read completion of a failed session).
 */
void bdsnap_ext_settle(struct bdsnap_extent *e)
{
	struct bdsnap_session *s = e->s;
	struct bdsnap_op *op;
	unsigned long flags;
	LIST_HEAD(resume);
	bool reserved;

	bdsnap_ext_pages_free(e);
	spin_lock_irqsave(&s->lock, flags);
	reserved = e->reserved;
	e->reserved = false;
	ext_tree_remove(e, &s->inflight);
	list_del(&e->node);
	list_splice_init(&e->waiters, &resume);
	op = e->op;
	e->op = NULL;
	s->pending_bytes -= e->bytes;
	spin_unlock_irqrestore(&s->lock, flags);

	if (reserved)
		bdsnap_mem_release(e->bytes);
	bdsnap_resume(&resume);
	if (op)
		bdsnap_op_put(op);
	mempool_free(e, bdsnap_ext_pool);
	bdsnap_session_put(s);
}

/* Read completed (or could not be issued): process context from here on. */
static void bdsnap_ext_done(struct work_struct *work)
{
	struct bdsnap_extent *e = container_of(work, struct bdsnap_extent, work);
	struct bdsnap_session *s = e->s;
	blk_status_t status = e->status;
	unsigned long flags;
	bool keep = false;

	if (e->bio.bi_end_io)
		bio_uninit(&e->bio);

	if (status)
		bdsnap_session_fail(s, blk_status_to_errno(status),
				    "reading a pre-image from the origin");
	spin_lock_irqsave(&s->lock, flags);
	/* A failing session's worker releases everything once it has recorded. */
	if (s->state == BDSNAP_SESSION_OPEN || s->failing) {
		list_add_tail(&e->qnode, &s->store_queue);
		keep = true;
	}
	spin_unlock_irqrestore(&s->lock, flags);

	if (keep)
		queue_work(bdsnap_store_wq, &s->store_work);
	else
		bdsnap_ext_settle(e);
}

static void bdsnap_ext_end_io(struct bio *bio)
{
	struct bdsnap_extent *e = bio->bi_private;

	e->status = bio->bi_status;
	INIT_WORK(&e->work, bdsnap_ext_done);
	queue_work(bdsnap_store_wq, &e->work);
}

static void bdsnap_ext_start_work(struct work_struct *work);

/* Allocate the pages and issue the read. Never waits for the read. */
static void bdsnap_ext_start(struct bdsnap_extent *e, gfp_t gfp)
{
	u32 i, off;

	if (!e->bvec) {
		e->bvec = mempool_alloc(bdsnap_bvec_pool, gfp | __GFP_NOWARN);
		if (!e->bvec)
			goto nomem;
		memset(e->bvec, 0, BDSNAP_EXT_PAGES * sizeof(*e->bvec));
	}
	for (i = 0, off = 0; i < e->nr_pages; i++, off += PAGE_SIZE) {
		if (e->bvec[i].bv_page)
			continue;
		e->bvec[i].bv_page = mempool_alloc(bdsnap_page_pool, gfp | __GFP_NOWARN);
		if (!e->bvec[i].bv_page)
			goto nomem;
		/* Past the end of the device: zeroes (a pool page is not clean). */
		if (off + PAGE_SIZE > e->valid)
			clear_highpage(e->bvec[i].bv_page);
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
	/* Not reached with GFP_NOIO: a mempool waits rather than fail. */
	bdsnap_session_fail(e->s, -ENOMEM, "allocating pre-image memory");
	e->status = BLK_STS_RESOURCE;
	INIT_WORK(&e->work, bdsnap_ext_done);
	queue_work(bdsnap_store_wq, &e->work);
}

static void bdsnap_ext_start_work(struct work_struct *work)
{
	struct bdsnap_extent *e = container_of(work, struct bdsnap_extent, work);
	unsigned int noio = memalloc_noio_save();

	bdsnap_ext_start(e, GFP_NOIO);
	memalloc_noio_restore(noio);
}

/* ---- the analysis ---- */

/* Allocation failed where we may not sleep: finish in the worker. */
int bdsnap_op_defer(struct bdsnap_op *op)
{
	op->gfp = GFP_NOIO;
	queue_work(bdsnap_cow_wq, &op->work);
	return OP_PARKED;
}

/*
 * s is not open (s->lock held): a failing session holds the op until its
 * failure is recorded, a failed one lets it go.
 */
static int bdsnap_oppart_closed(struct bdsnap_op *op, struct bdsnap_oppart *t)
{
	struct bdsnap_session *s = t->s;

	if (s->failing) {
		list_add_tail(&op->park, &s->fail_waiters);
		return OP_PARKED;
	}
	t->cursor = t->last + 1;
	return OP_DONE;
}

/* Claim chunks [c, c + n) for op as a new extent (s->lock held). */
static struct bdsnap_extent *bdsnap_claim(struct bdsnap_op *op,
					  struct bdsnap_oppart *t, u64 c, u64 n)
{
	struct bdsnap_session *s = t->s;
	struct bdsnap_extent *e = op->spare;
	u64 bytes = n << s->chunk_shift;

	op->spare = NULL;
	e->first = c;
	e->last = c + n - 1;
	e->s = s;
	e->op = op;
	e->claimed_at = jiffies | 1;
	e->reserved = true;
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
	return e;
}

static int bdsnap_oppart_run(struct bdsnap_op *op, struct bdsnap_oppart *t,
			     struct list_head *start)
{
	struct bdsnap_session *s = t->s;
	u64 max_chunks = max(1U, BDSNAP_EXTENT_MAX >> s->chunk_shift);
	struct bdsnap_extent *e;
	unsigned long flags;
	int ret;

	if (t->cursor > t->last)
		return OP_DONE;
	if (READ_ONCE(s->state) == BDSNAP_SESSION_OPEN) {
		ret = bdsnap_chunkmap_prepare(&s->map, t->cursor, t->last, op->gfp);
		if (ret) {
			if (!gfpflags_allow_blocking(op->gfp))
				return bdsnap_op_defer(op);
			/* Memory is short: wait and retry; the watchdog bounds it. */
			bdsnap_throttle_park(op);
			bdsnap_throttle_retry_later();
			return OP_THROTTLED;
		}
	}

	for (;;) {
		u64 c, n, end, bytes;

		spin_lock_irqsave(&s->lock, flags);
		if (s->state != BDSNAP_SESSION_OPEN || t->cursor > t->last) {
			ret = s->state != BDSNAP_SESSION_OPEN ?
			      bdsnap_oppart_closed(op, t) : OP_DONE;
			spin_unlock_irqrestore(&s->lock, flags);
			return ret;
		}
		e = ext_tree_iter_first(&s->inflight, t->cursor, t->last);
		if (e && e->first <= t->cursor) {
			if (e->op == op) {
				t->cursor = e->last + 1;
				spin_unlock_irqrestore(&s->lock, flags);
				continue;
			}
			/* Another write's pre-image of this chunk is not durable yet. */
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
			op->spare = mempool_alloc(bdsnap_ext_pool,
						  op->gfp | __GFP_NOWARN);
			if (op->spare) {
				memset(op->spare, 0, sizeof(*op->spare));
				continue;
			}
			if (!gfpflags_allow_blocking(op->gfp))
				return bdsnap_op_defer(op);
			bdsnap_session_fail(s, -ENOMEM, "allocating an extent");
			continue;
		}
		n = bdsnap_chunkmap_clear_run(&s->map, c, min(end, c + max_chunks - 1));
		bytes = n << s->chunk_shift;
		/* FIFO: nobody overtakes a writer that waits for memory. */
		if ((!op->from_throttle && bdsnap_throttle_waiting()) ||
		    !bdsnap_mem_reserve(bytes)) {
			t->cursor = c;
			bdsnap_throttle_park(op);
			spin_unlock_irqrestore(&s->lock, flags);
			bdsnap_throttle_recheck(bytes);
			return OP_THROTTLED;
		}
		e = bdsnap_claim(op, t, c, n);
		spin_unlock_irqrestore(&s->lock, flags);
		list_add_tail(&e->qnode, start);
	}
}

/*
 * Continue the analysis where it stopped. Only one context runs it at a
 * time: whoever parks the op hands it over to whoever resumes it.
 */
int bdsnap_op_run(struct bdsnap_op *op)
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
	if (r == OP_DONE)
		bdsnap_op_put(op);	/* the analysis reference */
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

/* ---- session setup and failure ---- */

void bdsnap_cow_session_init(struct bdsnap_session *s)
{
	s->inflight = RB_ROOT_CACHED;
	INIT_LIST_HEAD(&s->outstanding);
	INIT_LIST_HEAD(&s->store_queue);
	INIT_LIST_HEAD(&s->fail_waiters);
	INIT_WORK(&s->store_work, bdsnap_store_work);
}

/*
 * The session has just gone FAILED (and failing). Its throttled ops go to
 * the fail list (they would wait for memory that no longer matters); the
 * store worker records the failure and then calls bdsnap_cow_release().
 */
void bdsnap_cow_fail(struct bdsnap_session *s)
{
	LIST_HEAD(resume);

	bdsnap_throttle_forget(s, &resume);
	bdsnap_resume(&resume);
}

/*
 * Let every write the session holds go: the failure is recorded, or the
 * watchdog gave up waiting for that. Extents stay with their owners (a
 * read in flight, the store worker), which settle them; only their hold on
 * the ops is taken here.
 */
void bdsnap_cow_release(struct bdsnap_session *s)
{
	struct bdsnap_extent *e;
	unsigned long flags;
	LIST_HEAD(resume);
	u64 freed = 0;

	spin_lock_irqsave(&s->lock, flags);
	s->failing = false;
	list_for_each_entry(e, &s->outstanding, node) {
		/* A hung store keeps its extents: the cap must not keep them too. */
		if (e->reserved) {
			e->reserved = false;
			freed += e->bytes;
		}
		list_splice_init(&e->waiters, &resume);
		if (e->op) {
			bdsnap_op_put_locked(e->op);
			e->op = NULL;
		}
	}
	list_splice_init(&s->fail_waiters, &resume);
	spin_unlock_irqrestore(&s->lock, flags);
	if (freed)
		bdsnap_mem_release(freed);
	bdsnap_resume(&resume);
}

static void bdsnap_pools_destroy(void)
{
	mempool_destroy(bdsnap_page_pool);
	mempool_destroy(bdsnap_bvec_pool);
	mempool_destroy(bdsnap_ext_pool);
	mempool_destroy(bdsnap_op_pool);
	kmem_cache_destroy(bdsnap_ext_cache);
}

int bdsnap_cow_init(void)
{
	bdsnap_ext_cache = KMEM_CACHE(bdsnap_extent, 0);
	if (bdsnap_ext_cache)
		bdsnap_ext_pool = mempool_create_slab_pool(BDSNAP_POOL_OPS,
							   bdsnap_ext_cache);
	bdsnap_op_pool = mempool_create_kmalloc_pool(BDSNAP_POOL_OPS,
			struct_size_t(struct bdsnap_op, t, BDSNAP_MAX_TARGETS));
	bdsnap_bvec_pool = mempool_create_kmalloc_pool(2,
			BDSNAP_EXT_PAGES * sizeof(struct bio_vec));
	bdsnap_page_pool = mempool_create_page_pool(BDSNAP_EXT_PAGES, 0);
	if (!bdsnap_ext_pool || !bdsnap_op_pool || !bdsnap_bvec_pool ||
	    !bdsnap_page_pool) {
		bdsnap_pools_destroy();
		return -ENOMEM;
	}
	return bdsnap_throttle_init();
}

void bdsnap_cow_exit(void)
{
	/* Deferred bios, op completions and read completions use the pools. */
	flush_workqueue(bdsnap_cow_wq);
	flush_workqueue(bdsnap_store_wq);
	bdsnap_throttle_exit();
	bdsnap_pools_destroy();
}
