// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: which sessions a write bio concerns, from the submit_bio_noacct
 * hook. A write in a session's range becomes a held op (cow.c); a write to
 * an activated device outside any session is counted (unmounted_writes),
 * so the restorer can tell when a chain misses changes.
 *
 * Discard and secure erase are refused (BLK_STS_NOTSUPP) while an open
 * session covers their range, as dm-snapshot's origin does: copying what
 * they free would read all free space into the store on an fstrim, and
 * would keep a copy of what a secure erase was asked to destroy. The block
 * layer's discard helpers treat NOTSUPP as success (discard is advisory),
 * so fstrim and blkdiscard report success while nothing is trimmed: the
 * kernel log says so once per session. Write-zeroes changes data and is
 * copied like a write.
 *
 * Flushes are never held: every write that completed before a flush had
 * its pre-image durable before it was sent (write-ahead), so a flush has
 * nothing to wait for. An FUA or PREFLUSH write with data is held like any
 * other write.
 *
 * A bio that arrives where we may not sleep and finds no memory for its op
 * is queued on a bio list (no allocation) and analysed again by a worker,
 * where the op's mempool waits instead of failing.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/preempt.h>
#include <linux/major.h>
#include <linux/sched/mm.h>

#include "core.h"

static struct bio_list bdsnap_deferred = BIO_EMPTY_LIST;
static DEFINE_SPINLOCK(bdsnap_deferred_lock);
static void bdsnap_deferred_fn(struct work_struct *work);
static DECLARE_WORK(bdsnap_deferred_work, bdsnap_deferred_fn);

/* Chunks [*first, *last] of s that sectors [abs, abs + nr) touch. */
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
 * More sessions on this disk than one op can serve: fail the ones left
 * out, so that nothing is missed silently. Absurd configurations only.
 */
static void bdsnap_fail_overflow(const struct bdsnap_oppart *t, unsigned int n,
				 dev_t disk, sector_t abs, sector_t nr)
{
	for (;;) {
		struct bdsnap_session *victim = NULL;
		struct bdsnap_dev *dev;
		unsigned int i;

		rcu_read_lock();
		list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
			struct bdsnap_session *s = rcu_dereference(dev->session);

			if (!s || READ_ONCE(s->state) != BDSNAP_SESSION_OPEN ||
			    !bdsnap_overlaps(&s->span, disk, abs, nr))
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

/* Count a write to an image-file activation's loop device outside a session. */
static void bdsnap_count_loop(struct gendisk *disk, dev_t ddev)
{
	struct bdsnap_dev *dev = bdsnap_loop_lookup(disk, true);

	if (dev) {
		struct bdsnap_session *s = rcu_dereference(dev->session);

		if (!s || s->span.disk != ddev)
			atomic64_inc(&dev->unmounted_writes);
	}
}

/* The sessions whose range the bio touches, each with a users reference. */
static unsigned int bdsnap_targets(struct bio *bio, struct bdsnap_oppart *t,
				   sector_t abs, sector_t nr, bool *overflow)
{
	struct gendisk *disk = bio->bi_bdev->bd_disk;
	dev_t ddev = bdsnap_disk_devt(disk);
	struct bdsnap_dev *dev;
	unsigned int n = 0;

	rcu_read_lock();
	list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
		struct bdsnap_session *s = rcu_dereference(dev->session);
		u64 first, last;

		if (s && s->span.disk == ddev) {
			if (!bdsnap_range(s, abs, nr, &first, &last))
				continue;
			if (n == BDSNAP_MAX_TARGETS) {
				*overflow = true;	/* failed by the caller */
				continue;
			}
			bdsnap_session_get(s);
			t[n].s = s;
			t[n].first = first;
			t[n].last = last;
			t[n].cursor = first;
			n++;
			continue;
		}
		if (dev->kind == BDSNAP_KIND_BLOCK &&
		    bdsnap_overlaps(&dev->span, ddev, abs, nr))
			atomic64_inc(&dev->unmounted_writes);
	}
	if (disk->major == LOOP_MAJOR && atomic_read(&bdsnap_nr_file_devs))
		bdsnap_count_loop(disk, ddev);
	rcu_read_unlock();
	return n;
}

/*
 * Take the bio if a session needs it; false: the caller submits it as is.
 * Unmounted writes to activated devices are counted on the way.
 */
bool bdsnap_cow_submit(struct bio *bio)
{
	struct bdsnap_oppart t[BDSNAP_MAX_TARGETS];
	u32 len = bio->bi_iter.bi_size;
	bool overflow = false, atomic_ctx;
	struct bdsnap_op *op;
	unsigned int n, i;
	sector_t abs, nr;
	gfp_t gfp;

	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
	case REQ_OP_WRITE_ZEROES:
		break;
	default:
		return false;	/* zone operations: zoned devices are never activated */
	}
	if (!len)
		return false;	/* a flush: nothing to wait for (see above) */
	/* A remapped bio (split remainder) already carries disk sectors. */
	abs = bio->bi_iter.bi_sector +
	      (bio_flagged(bio, BIO_REMAPPED) ? 0 : bio->bi_bdev->bd_start_sect);
	nr = len >> SECTOR_SHIFT;

	n = bdsnap_targets(bio, t, abs, nr, &overflow);
	if (unlikely(overflow))
		bdsnap_fail_overflow(t, n, bdsnap_disk_devt(bio->bi_bdev->bd_disk),
				     abs, nr);
	if (!n)
		return false;

	if (bio_op(bio) == REQ_OP_DISCARD || bio_op(bio) == REQ_OP_SECURE_ERASE) {
		bool refuse = false;

		for (i = 0; i < n; i++) {
			struct bdsnap_session *s = t[i].s;

			/* Failing: the store still reads as exact, so nothing unsaved goes. */
			if (READ_ONCE(s->state) == BDSNAP_SESSION_OPEN ||
			    READ_ONCE(s->failing)) {
				refuse = true;
				if (!xchg(&s->discard_refused, true))
					pr_info("%s: session %s: discard and secure erase are refused while it is open; nothing is trimmed\n",
						s->dev->name, s->id);
			}
			bdsnap_session_put(s);
		}
		if (!refuse)
			return false;	/* failed sessions protect nothing */
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		return true;
	}

	if ((bio->bi_opf & REQ_NOWAIT) &&
	    atomic64_read(&bdsnap_inflight_bytes) >= bdsnap_mem_limit()) {
		for (i = 0; i < n; i++)
			bdsnap_session_put(t[i].s);
		bio_wouldblock_error(bio);
		return true;
	}

	/*
	 * submit_bio may sleep, so its callers can; REQ_NOWAIT callers do not
	 * want to. Anything that cannot (softirq, preemption or interrupts
	 * off) defers the analysis to the worker, and so does a bio that dm or
	 * md submits from inside their ->submit_bio (current->bio_list set):
	 * our pre-image reads would only be queued on that list until we
	 * return, so nothing here may wait for memory they free.
	 */
	atomic_ctx = !in_task() || !preemptible() || irqs_disabled() ||
		     current->bio_list;
	gfp = (bio->bi_opf & REQ_NOWAIT) || atomic_ctx ? GFP_NOWAIT : GFP_NOIO;
	op = bdsnap_op_alloc(bio, n, gfp);
	if (!op) {
		unsigned long flags;

		for (i = 0; i < n; i++)
			bdsnap_session_put(t[i].s);
		if (bio->bi_opf & REQ_NOWAIT) {
			bio_wouldblock_error(bio);
			return true;
		}
		spin_lock_irqsave(&bdsnap_deferred_lock, flags);
		bio_list_add(&bdsnap_deferred, bio);
		spin_unlock_irqrestore(&bdsnap_deferred_lock, flags);
		queue_work(bdsnap_cow_wq, &bdsnap_deferred_work);
		return true;
	}
	memcpy(op->t, t, n * sizeof(*t));

	if (atomic_ctx)
		bdsnap_op_defer(op);
	else
		bdsnap_op_run(op);
	return true;
}

/* Bios that found no op memory in atomic context: analysed again here. */
static void bdsnap_deferred_fn(struct work_struct *work)
{
	unsigned int noio = memalloc_noio_save();

	for (;;) {
		unsigned long flags;
		struct bio *bio;

		spin_lock_irqsave(&bdsnap_deferred_lock, flags);
		bio = bio_list_pop(&bdsnap_deferred);
		spin_unlock_irqrestore(&bdsnap_deferred_lock, flags);
		if (!bio)
			break;
		/* From this module: the hook lets it through to the device. */
		if (!bdsnap_cow_submit(bio))
			submit_bio_noacct(bio);
	}
	memalloc_noio_restore(noio);
}
