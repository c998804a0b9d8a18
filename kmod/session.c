// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: a mount's copy-on-write session, from vfs_get_tree() to the last
 * deactivate_locked_super().
 *
 * Opening. The mount wrapper resolves fc->source in the mounting task's
 * context (lookup_bdev), finds the activated device it is or lies on
 * (coverage.c: partitions, loop, dm, md), and creates and publishes the
 * session before the real vfs_get_tree() runs, so every write of
 * fill_super and journal replay is captured. A mount of a device that
 * already has a session joins it: the same filesystem again, btrfs's nested
 * mount, or another filesystem on it (two LVs of an activated PV); the
 * session keeps the set of its super_blocks. An image mounted through a
 * second loop device while in a session is refused (-EBUSY): its writes
 * would reach a disk the session does not track. A failed mount closes its
 * session; one that saved nothing is removed from the store, one that did
 * save (a replayed journal, say) is kept, because the device did change.
 *
 * Closing. The unmount wrapper notes before the real call whether this is
 * a super_block's last active reference; it then leaves the session's set
 * and counts as leaving. After the call, when the filesystem has written
 * and released everything, the session closes if no super_block is left,
 * none is leaving and no mount is on its way in: unpublish, RCU grace
 * period (no new users), wait for users == 0 (held writes, pre-image reads,
 * store writes) and the store worker, finalise the store, free. The
 * unmount path may sleep for that.
 *
 * dev->state serialises openers and closers of one device (reg_mutex): a
 * mount that finds a session being opened or closed waits for the outcome.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/blkdev.h>
#include <linux/log2.h>
#include <linux/major.h>
#include <linux/timekeeping.h>
#include <linux/err.h>
#include <linux/string.h>

#include "core.h"
#include "compat.h"

static DECLARE_WAIT_QUEUE_HEAD(bdsnap_drain_wq);

/* The waitqueue is global: a session may be freed the moment users hits 0. */
void bdsnap_session_put(struct bdsnap_session *s)
{
	if (atomic_dec_and_test(&s->users))
		wake_up_all(&bdsnap_drain_wq);
}

/*
 * OPEN -> FAILED, once, and failing: writes are held until the store worker
 * has recorded the failure (cow.c). The caller holds a users reference.
 * False if it had already failed.
 */
bool __bdsnap_session_fail(struct bdsnap_session *s, int err, const char *what)
{
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	if (s->state != BDSNAP_SESSION_OPEN) {
		spin_unlock_irqrestore(&s->lock, flags);
		return false;
	}
	s->state = BDSNAP_SESSION_FAILED;
	s->failing = true;
	s->failed_at = jiffies | 1;
	s->error = err;
	s->error_what = what;
	spin_unlock_irqrestore(&s->lock, flags);

	pr_err("%s: session %s failed: %pe (%s); copy-on-write stopped for it, origin I/O goes on\n",
	       s->dev->name, s->id, ERR_PTR(err), what);
	atomic64_inc(&bdsnap_total_failed);
	bdsnap_cow_fail(s);
	return true;
}

void bdsnap_session_fail(struct bdsnap_session *s, int err, const char *what)
{
	/* The store worker records the failure, then releases the writes. */
	if (__bdsnap_session_fail(s, err, what))
		queue_work(bdsnap_store_wq, &s->store_work);
}

/* ---- open ---- */

static int bdsnap_store_open_fn(void *arg)
{
	struct bdsnap_session *s = arg;
	char name[160];

	bdsnap_sanitize_name(s->dev->name, name, sizeof(name));
	return bdsnap_store_open(s, name);
}

struct bdsnap_close_args {
	struct bdsnap_session *s;
	bool discard;
};

static int bdsnap_store_close_fn(void *arg)
{
	struct bdsnap_close_args *a = arg;

	bdsnap_store_close(a->s, a->discard);
	return 0;
}

/* Everything that needs no lock and may sleep; NULL: mount unprotected. */
static struct bdsnap_session *bdsnap_session_create(struct bdsnap_dev *dev,
						    dev_t devt,
						    const char *fs_type,
						    bool at_activation,
						    u64 seq, u64 unmounted)
{
	struct bdsnap_session *s;
	struct bdsnap_bdev b;
	int ret;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return NULL;
	ret = bdsnap_bdev_open_ro(devt, &b);
	if (ret) {
		pr_err("%s: cannot open %u:%u to start a session: %pe\n",
		       dev->name, MAJOR(devt), MINOR(devt), ERR_PTR(ret));
		kfree(s);
		return NULL;
	}
	s->span.disk = bdsnap_disk_devt(b.bdev->bd_disk);
	s->span.start = b.bdev->bd_start_sect;
	s->span.nr = bdev_nr_sectors(b.bdev);
	s->size = bdev_nr_bytes(b.bdev);
	s->lbs = bdev_logical_block_size(b.bdev);
	bdsnap_bdev_close(&b);

	if (!s->size) {
		kfree(s);
		return NULL;
	}
	s->devt = devt;
	s->kind = dev->kind;
	s->chunk_size = max(BDSNAP_CHUNK_MIN, s->lbs);
	s->chunk_shift = ilog2(s->chunk_size);
	s->nr_chunks = DIV_ROUND_UP(s->size, s->chunk_size);
	s->mount_time_ns = ktime_get_real_ns();
	s->seq = seq;
	s->unmounted_before = unmounted;
	strscpy(s->fs_type, fs_type, sizeof(s->fs_type));
	s->at_activation = at_activation;
	if (smp_load_acquire(&dev->identity_set))
		strscpy(s->identity, dev->identity, sizeof(s->identity));
	s->dev = dev;
	s->state = BDSNAP_SESSION_OPEN;
	spin_lock_init(&s->lock);
	bdsnap_chunkmap_init(&s->map, s->nr_chunks);
	bdsnap_cow_session_init(s);
	atomic_set(&s->users, 1);	/* published; dropped by close */

	/* The store must not have moved onto the device since activation. */
	ret = bdsnap_store_conflict(&dev->root, &s->span,
				    dev->kind == BDSNAP_KIND_FILE ? &dev->file : NULL);
	if (ret) {
		pr_err("%s: no session: the store root %s is refused (%pe); this mount is not protected\n",
		       dev->name, bdsnap_store_root, ERR_PTR(ret));
		goto err;
	}

	ret = bdsnap_call_in_worker(bdsnap_store_open_fn, s);
	if (ret) {
		pr_err("%s: no session: cannot create its store under %s: %pe; this mount is not protected\n",
		       dev->name, bdsnap_store_root, ERR_PTR(ret));
		atomic64_inc(&bdsnap_total_failed);
		goto err;
	}
	return s;
err:
	bdsnap_chunkmap_destroy(&s->map);
	kfree(s);
	return NULL;
}

/* A session created but never published: its store goes, as for an empty failed mount. */
static void bdsnap_session_discard(struct bdsnap_session *s)
{
	struct bdsnap_close_args a = { .s = s, .discard = true };

	bdsnap_call_in_worker(bdsnap_store_close_fn, &a);
	bdsnap_chunkmap_destroy(&s->map);
	kfree(s);
}

/*
 * Writes to the device counted outside any session up to now belong to
 * this one's meta.json. Called after publication and a grace period, so no
 * bio that missed the session is still counting; if the count grew while
 * the session was created, the store worker (meta.json's only writer once
 * the session is published) rewrites it.
 */
static void bdsnap_take_unmounted(struct bdsnap_session *s)
{
	u64 n;

	synchronize_rcu();
	n = atomic64_xchg(&s->dev->unmounted_writes, 0);
	if (n == s->unmounted_before)
		return;
	WRITE_ONCE(s->unmounted_before, n);
	WRITE_ONCE(s->meta_stale, true);
	/* getters holds the session open, so its close flushes this work. */
	queue_work(bdsnap_store_wq, &s->store_work);
}

/*
 * The session a mount joins or opens, NULL if the mount is not ours (or
 * cannot be protected), or an error pointer to refuse the mount.
 */
struct bdsnap_session *bdsnap_mount_begin(struct fs_context *fc)
{
	struct bdsnap_dev *dev;
	dev_t devt, target;

	if (!fc->source || !fc->fs_type ||
	    !(fc->fs_type->fs_flags & FS_REQUIRES_DEV))
		return NULL;
	if (lookup_bdev(fc->source, &devt))
		return NULL;
	dev = bdsnap_dev_for_mount(devt, &target);
	if (!dev)
		return NULL;
	return bdsnap_open_begin(dev, devt, target, fc->fs_type->name, NULL);
}

/*
 * The session of dev for a filesystem of type fs_type on devt (target: the
 * device of dev it reaches), joined or opened; consumes the caller's
 * reference on dev. freeze: a filesystem mounted before the activation
 * (live.c), frozen once its session's store is ready and before the session
 * is published, so that a store that does not answer never holds it frozen.
 * It never joins a session; on success it is left frozen for the caller to
 * thaw, on failure (an error pointer, or NULL with the reason logged) not.
 */
struct bdsnap_session *bdsnap_open_begin(struct bdsnap_dev *dev, dev_t devt,
					 dev_t target, const char *fs_type,
					 struct super_block *freeze)
{
	struct bdsnap_session *s = NULL;
	bool at_activation = freeze;
	u64 seq, unmounted;
	int ret;

	mutex_lock(&bdsnap_reg_mutex);
	for (;;) {
		if (!dev->listed || dev->deactivating)
			goto out_unlock;
		if (at_activation && dev->state != BDSNAP_DEV_IDLE) {
			/* Another mount has a session, or one is on its way. */
			s = ERR_PTR(-EBUSY);
			goto out_unlock;
		}
		if (dev->state == BDSNAP_DEV_OPEN) {
			s = rcu_dereference_protected(dev->session,
					lockdep_is_held(&bdsnap_reg_mutex));
			if (s->devt != target) {
				/*
				 * The image through a second loop device: its
				 * writes would reach a disk the session does not
				 * track. Refused rather than left unprotected.
				 */
				pr_err("%s: mount of %u:%u refused: the image is already in session %s through %u:%u; mount it through that loop device, or unmount first\n",
				       dev->name, MAJOR(devt), MINOR(devt), s->id,
				       MAJOR(s->devt), MINOR(s->devt));
				s = ERR_PTR(-EBUSY);
				goto out_unlock;
			}
			/* Mounted again, a nested mount, or another filesystem on it. */
			s->getters++;
			goto out_unlock;
		}
		if (dev->state == BDSNAP_DEV_IDLE)
			break;
		if (dev->close_deferred) {
			/* Waiting would hang this mount as long as that store. */
			pr_warn("%s: no session for this mount: the previous session still waits for its store\n",
				dev->name);
			goto out_unlock;
		}
		mutex_unlock(&bdsnap_reg_mutex);
		wait_event(bdsnap_reg_wq,
			   READ_ONCE(dev->state) == BDSNAP_DEV_IDLE ||
			   READ_ONCE(dev->state) == BDSNAP_DEV_OPEN);
		mutex_lock(&bdsnap_reg_mutex);
	}
	dev->state = BDSNAP_DEV_OPENING;
	seq = dev->nr_sessions + 1;
	/* So far; the exact count is taken once the session is published. */
	unmounted = atomic64_read(&dev->unmounted_writes);
	mutex_unlock(&bdsnap_reg_mutex);

	s = bdsnap_session_create(dev, target, fs_type, at_activation, seq,
				  unmounted);
	if (s && freeze) {
		ret = bdsnap_freeze_super(freeze);
		if (ret) {
			pr_err("%s: cannot freeze %s on %u:%u to start a session: %pe\n",
			       dev->name, fs_type, MAJOR(devt), MINOR(devt),
			       ERR_PTR(ret));
			bdsnap_session_discard(s);
			s = ERR_PTR(ret);
		}
	}

	mutex_lock(&bdsnap_reg_mutex);
	if (!IS_ERR_OR_NULL(s)) {
		refcount_inc(&dev->ref);
		dev->nr_sessions = seq;
		s->getters = 1;
		/* Writes from here on are the session's. */
		rcu_assign_pointer(dev->session, s);
		bdsnap_filter_add(s->span.disk);
		atomic_inc(&bdsnap_nr_sessions);
		dev->state = BDSNAP_DEV_OPEN;
	} else {
		dev->state = BDSNAP_DEV_IDLE;
	}
	wake_up_all(&bdsnap_reg_wq);
	mutex_unlock(&bdsnap_reg_mutex);

	if (!IS_ERR_OR_NULL(s)) {
		bdsnap_take_unmounted(s);
		bdsnap_watchdog_arm();
		pr_info("%s: session %s opened (%s on %u:%u, chunk %u)\n",
			dev->name, s->id, s->fs_type, MAJOR(devt), MINOR(devt),
			s->chunk_size);
	}
	bdsnap_dev_put(dev);
	return s;

out_unlock:
	mutex_unlock(&bdsnap_reg_mutex);
	bdsnap_dev_put(dev);
	return s;
}

/* The store worker is inside a store write or sync that does not return. */
static bool bdsnap_store_stuck(struct bdsnap_session *s)
{
	unsigned long busy = READ_ONCE(s->store_busy_since);

	return busy && time_after(jiffies, busy + 2 * HZ);
}

/*
 * Wait for the held writes, extents and the store worker to finish. The
 * session is unpublished, so the watchdog cannot see it: this loop does its
 * job. False if it failed and its store does not answer: the rest of the
 * close must not hold the unmount.
 */
static bool bdsnap_session_drain(struct bdsnap_session *s)
{
	for (;;) {
		if (wait_event_timeout(bdsnap_drain_wq,
				       atomic_read(&s->users) == 0, HZ) &&
		    !(work_busy(&s->store_work) && bdsnap_store_stuck(s)))
			break;
		bdsnap_watchdog_check(s);
		if (READ_ONCE(s->state) != BDSNAP_SESSION_OPEN && bdsnap_store_stuck(s))
			return false;
	}
	flush_work(&s->store_work);
	return true;
}

static void bdsnap_session_finish(struct bdsnap_session *s, bool failed_mount);

/* A close handed over by an unmount whose store hung: poll, never block. */
static void bdsnap_close_poll(struct work_struct *work)
{
	struct bdsnap_session *s = container_of(to_delayed_work(work),
						struct bdsnap_session, close_work);

	if (atomic_read(&s->users) || work_busy(&s->store_work)) {
		bdsnap_watchdog_check(s);
		queue_delayed_work(bdsnap_ctl_wq, &s->close_work, HZ);
		return;
	}
	pr_info("%s: session %s: the store answers again; closing it\n",
		s->dev->name, s->id);
	bdsnap_session_finish(s, s->close_failed_mount);
}

static void bdsnap_session_close(struct bdsnap_session *s, bool failed_mount)
{
	struct bdsnap_dev *dev = s->dev;

	mutex_lock(&bdsnap_reg_mutex);
	rcu_assign_pointer(dev->session, NULL);
	atomic_dec(&bdsnap_nr_sessions);
	mutex_unlock(&bdsnap_reg_mutex);
	/* No bio hook or list reader can find it any more. */
	synchronize_rcu();

	bdsnap_session_put(s);
	if (!bdsnap_session_drain(s)) {
		pr_warn("%s: session %s: its store does not answer; the unmount goes on, the session closes when the store answers\n",
			dev->name, s->id);
		mutex_lock(&bdsnap_reg_mutex);
		dev->close_deferred = true;
		mutex_unlock(&bdsnap_reg_mutex);
		s->close_failed_mount = failed_mount;
		INIT_DELAYED_WORK(&s->close_work, bdsnap_close_poll);
		queue_delayed_work(bdsnap_ctl_wq, &s->close_work, HZ);
		return;
	}
	s->end_time_ns = ktime_get_real_ns();
	bdsnap_session_finish(s, failed_mount);
}

/* Finalise the store, log, let the device have its next session. */
static void bdsnap_session_finish(struct bdsnap_session *s, bool failed_mount)
{
	struct bdsnap_dev *dev = s->dev;
	struct bdsnap_close_args a = { .s = s, .discard = failed_mount };
	struct bdsnap_retired r = { 0 };
	struct bdsnap_session *prev = NULL;
	bool failed, discarded;

	if (!s->end_time_ns)
		s->end_time_ns = ktime_get_real_ns();
	if (current_work())
		bdsnap_store_close(s, failed_mount);	/* already a kworker */
	else
		bdsnap_call_in_worker(bdsnap_store_close_fn, &a);

	failed = s->state != BDSNAP_SESSION_OPEN;
	discarded = failed_mount && !s->store.records;
	if (discarded)
		pr_info("%s: mount failed; empty session %s removed\n",
			dev->name, s->id);
	else
		pr_info("%s: session %s %s: %u records, %llu bytes%s\n",
			dev->name, s->id, failed ? "ended failed" : "closed",
			s->store.records, s->store.map_bytes,
			failed_mount ? " (the mount failed)" : "");

	/* Before it can be seen as dev->last and freed by a deactivation. */
	bdsnap_chunkmap_destroy(&s->map);

	mutex_lock(&bdsnap_reg_mutex);
	dev->state = BDSNAP_DEV_IDLE;
	dev->close_deferred = false;
	if (!discarded) {
		prev = dev->last;
		dev->last = s;	/* with its device reference */
	}
	/*
	 * A mount that failed without writing leaves no trace: its seq is
	 * reused, and the unmounted writes it took over go to the next one.
	 */
	if (discarded) {
		if (dev->nr_sessions == s->seq)
			dev->nr_sessions--;
		atomic64_add(s->unmounted_before, &dev->unmounted_writes);
	}
	if (dev->deactivating)
		bdsnap_dev_retire(dev, &r);
	else
		bdsnap_filter_rebuild();
	wake_up_all(&bdsnap_reg_wq);
	mutex_unlock(&bdsnap_reg_mutex);

	if (discarded) {
		kfree(s);
		bdsnap_dev_put(dev);
	}
	bdsnap_last_free(prev);
	bdsnap_retired_finish(&r);
}

/*
 * The slot of sb in the session's set (NULL: a free one), or -1. Slots
 * never move: an RCU reader (bdsnap_umount_begin) must not miss an entry
 * while another is removed. reg_mutex held.
 */
static int bdsnap_sb_slot(struct bdsnap_session *s, struct super_block *sb)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(s->sbs); i++)
		if (s->sbs[i] == sb)
			return i;
	return -1;
}

void bdsnap_mount_end(struct bdsnap_session *s, int ret, struct fs_context *fc)
{
	bdsnap_open_end(s, ret ? NULL : fc->root->d_sb);
}

/* The session's opener is done: sb joins its set, or NULL for a failed mount. */
void bdsnap_open_end(struct bdsnap_session *s, struct super_block *sb)
{
	bool close, overflow = false;

	mutex_lock(&bdsnap_reg_mutex);
	s->getters--;
	if (sb && bdsnap_sb_slot(s, sb) < 0) {
		int i = bdsnap_sb_slot(s, NULL);

		if (i >= 0) {
			WRITE_ONCE(s->sbs[i], sb);
			s->nr_sbs++;
		} else {
			overflow = true;
		}
	}
	close = !s->getters && !s->nr_sbs && !s->leaving;
	if (close)
		s->dev->state = BDSNAP_DEV_CLOSING;
	else
		bdsnap_session_get(s);
	mutex_unlock(&bdsnap_reg_mutex);
	if (close) {
		bdsnap_session_close(s, true);
		return;
	}
	/* Its unmount could not be seen: the session cannot promise anything. */
	if (overflow)
		bdsnap_session_fail(s, -EMFILE, "too many filesystems mounted on the device");
	bdsnap_session_put(s);
}

/*
 * Before the real deactivate_locked_super(): if this is the super_block's
 * last active reference, it leaves the session's set now and counts as
 * leaving until its unmount has written everything (bdsnap_umount_end).
 */
struct bdsnap_session *bdsnap_umount_begin(struct super_block *sb, bool *last)
{
	struct bdsnap_session *s = NULL, *c;
	struct bdsnap_dev *dev;
	unsigned int i;

	*last = false;
	rcu_read_lock();
	list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
		c = rcu_dereference(dev->session);
		if (!c)
			continue;
		for (i = 0; i < ARRAY_SIZE(c->sbs); i++)
			if (READ_ONCE(c->sbs[i]) == sb)
				break;
		if (i < ARRAY_SIZE(c->sbs)) {
			bdsnap_session_get(c);
			s = c;
			break;
		}
	}
	rcu_read_unlock();
	if (!s)
		return NULL;

	/* Our caller holds s_umount, so s_active cannot be raised meanwhile. */
	if (atomic_read(&sb->s_active) == 1) {
		int slot;

		mutex_lock(&bdsnap_reg_mutex);
		slot = bdsnap_sb_slot(s, sb);
		if (slot >= 0) {
			WRITE_ONCE(s->sbs[slot], NULL);
			s->nr_sbs--;
			s->leaving++;
			*last = true;
		}
		mutex_unlock(&bdsnap_reg_mutex);
	}
	return s;
}

/*
 * After it: the session closes once no filesystem is mounted on it, none is
 * still unmounting, and no mount is on its way in (getters), which would
 * keep it going with its own super_block.
 */
void bdsnap_umount_end(struct bdsnap_session *s, bool last)
{
	bool close = false;

	if (last) {
		mutex_lock(&bdsnap_reg_mutex);
		s->leaving--;
		close = !s->nr_sbs && !s->leaving && !s->getters &&
			s->dev->state == BDSNAP_DEV_OPEN;
		if (close)
			s->dev->state = BDSNAP_DEV_CLOSING;
		mutex_unlock(&bdsnap_reg_mutex);
	}
	bdsnap_session_put(s);
	if (close)
		bdsnap_session_close(s, false);
}
