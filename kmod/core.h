/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bdsnap data plane: internals shared by registry.c, loopdev.c, hook.c,
 * coverage.c, session.c, meta.c, tracker.c, cow.c, throttle.c, chunkmap.c
 * and the store files. The control plane sees only bdsnap.h.
 *
 * Objects and who keeps them alive
 * --------------------------------
 * bdsnap_dev      an activated device. Referenced by the registry list, by
 *                 its session (and its last finished one, dev->last,
 *                 until deactivation), briefly by mount/activation paths. Read
 *                 by the bio hook under RCU only (kfree_rcu). Each dev holds
 *                 a module reference, so rmmod is refused while any exists.
 * bdsnap_session  one mount's copy-on-write session. Published in
 *                 dev->session (RCU) from before the filesystem opens the
 *                 device until after its last unmount has finished. Every
 *                 user that may outlive an RCU section (a held bio, an
 *                 extent, the hook while it works) holds s->users; closing
 *                 unpublishes, waits for an RCU grace period, then for
 *                 users == 0 and the store worker, and only then finalises
 *                 the store and frees. Nothing is freed while busy.
 * bdsnap_op       one held origin write (or flush). Owns the bio until it
 *                 is resubmitted. pending counts what it still waits for.
 * bdsnap_extent   a run of chunks whose pre-image one read fetches and one
 *                 map record stores. Lives from claim until its record is
 *                 durable (or the session has failed): it holds the claiming
 *                 op, and later writes to its chunks wait on it.
 *
 * Lock order: s_umount (held around deactivate_locked_super) ->
 * bdsnap_reg_mutex -> loop binding cache lock; s->lock ->
 * bdsnap_throttle_lock. Nothing that may take s_umount or sleep on I/O runs
 * under bdsnap_reg_mutex; slow work (opening devices, store files, sysfs)
 * runs between a state change and its publication. s->lock is taken with
 * interrupts disabled because a bio may be submitted from softirq.
 */
#ifndef _BDSNAP_CORE_H
#define _BDSNAP_CORE_H

#include <linux/types.h>
#include <linux/atomic.h>
#include <linux/refcount.h>
#include <linux/list.h>
#include <linux/rbtree.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/path.h>

#include "bdsnap.h"

/* Copy-on-write unit: 4 KiB, or the logical block size if larger. */
#define BDSNAP_CHUNK_MIN	4096U
/* Largest pre-image one read fetches and one map record describes. */
#define BDSNAP_EXTENT_MAX	(1U << 20)
/* Most sessions one bio can touch (overlapping activated partitions). */
#define BDSNAP_MAX_TARGETS	8
/* Filesystems mounted at once in one session (LVs on a PV, say). */
#define BDSNAP_MAX_MOUNTS	16
/* Records buffered between two syncs of blocks.map (a group commit). */
#define BDSNAP_MAX_PENDING	1024

extern struct workqueue_struct *bdsnap_cow_wq;	 /* read completions, held bios */
extern struct workqueue_struct *bdsnap_store_wq; /* blocks.dat/map writers */
extern struct workqueue_struct *bdsnap_ctl_wq;	 /* path and store-file setup */
extern struct mutex bdsnap_reg_mutex;
extern wait_queue_head_t bdsnap_reg_wq;		 /* dev->state changes */
extern struct list_head bdsnap_devs;		 /* RCU; writers hold reg_mutex */
extern unsigned int bdsnap_inflight_limit_mb;
extern unsigned int bdsnap_watchdog_secs;	 /* held I/O older than this fails */

/* Module-wide counters (STATUS). */
extern atomic_t bdsnap_nr_devs, bdsnap_nr_file_devs, bdsnap_nr_sessions;
extern atomic64_t bdsnap_inflight_bytes, bdsnap_inflight_peak;
extern atomic64_t bdsnap_total_chunks, bdsnap_total_bytes, bdsnap_total_failed;

/* A sector range of a whole disk, named by the disk's dev_t. */
struct bdsnap_span {
	dev_t disk;
	sector_t start;
	sector_t nr;
};

/* Identity of a regular file: the device of its filesystem and its inode. */
struct bdsnap_file_id {
	dev_t sdev;
	unsigned long ino;
};

enum bdsnap_dev_state {
	BDSNAP_DEV_IDLE,	/* no session */
	BDSNAP_DEV_OPENING,	/* a mount is creating the session */
	BDSNAP_DEV_OPEN,
	BDSNAP_DEV_CLOSING,	/* last unmount in progress, then finalising */
};

struct bdsnap_session;

struct bdsnap_dev {
	struct list_head node;		/* bdsnap_devs */
	refcount_t ref;
	struct rcu_head rcu;
	u32 kind;			/* enum bdsnap_device_kind */
	bool deactivating;		/* reg_mutex */
	bool listed;			/* reg_mutex: on bdsnap_devs */
	enum bdsnap_dev_state state;	/* reg_mutex */
	bool close_deferred;		/* reg_mutex: CLOSING waits for a hung store */
	u64 nr_sessions;		/* reg_mutex: sessions since activation */
	dev_t devt;			/* BLOCK: the activated device */
	struct bdsnap_span span;	/* BLOCK: where it lies on its disk */
	struct bdsnap_file_id file;	/* FILE: the image */
	struct path root;		/* the store root, held from activation */
	dev_t bound;			/* FILE: loop device last seen on it */
	struct bdsnap_session __rcu *session;
	atomic64_t unmounted_writes;	/* since activation or last session */
	/* reg_mutex: the last finished session, kept for deactivation to record
	 * the writes after it in its meta.json; holds a device reference. */
	struct bdsnap_session *last;
	/* Set once (SET_IDENTITY), then read without a lock: identity_set
	 * is stored with release after identity is complete. */
	bool identity_set;
	char identity[BDSNAP_IDENTITY_LEN];
	char name[];			/* path given at activation */
};

struct bdsnap_chunkmap {
	struct xarray pages;		/* index -> bitmap page */
	u64 nr_chunks;
};

/* Store state; only the session's store worker and open/close touch it. */
struct bdsnap_store {
	struct file *dat, *map, *meta;
	struct path path;		/* the session directory, held while open */
	char *dir;			/* its path, for messages */
	loff_t dat_off, map_off;
	loff_t map_alloc;		/* blocks.map's size: zeroes past map_off */
	u32 records;			/* in blocks.map */
	u64 map_bytes;			/* data the records in blocks.map cover */
	u32 meta_size;			/* meta.json is rewritten in place */
	struct bdsnap_map_record *pending;	/* records whose data is written */
	u32 nr_pending;
	bool dat_dirty;			/* blocks.dat written since its fsync */
	bool map_dirty;
	struct bdsnap_map_header hdr;	/* as written; FAILED rewrites it */
};

struct bdsnap_session {
	struct bdsnap_dev *dev;		/* holds a reference */
	/* reg_mutex (read under RCU): the filesystems mounted on it. */
	struct super_block *sbs[BDSNAP_MAX_MOUNTS];
	unsigned int nr_sbs;
	unsigned int leaving;		/* reg_mutex: unmounts still writing */
	unsigned int getters;		/* reg_mutex: vfs_get_tree in progress */
	atomic_t users;

	/* Geometry and identity, fixed at open. */
	struct bdsnap_span span;	/* the covered sectors of the disk */
	dev_t devt;			/* the mounted device */
	u32 kind;
	u32 lbs;
	u32 chunk_size;
	u32 chunk_shift;		/* log2(chunk_size) */
	u64 size;			/* bytes */
	u64 nr_chunks;
	u64 seq;
	u64 mount_time_ns;		/* or activation time: at_activation */
	u64 end_time_ns;
	u64 unmounted_before;
	u64 unmounted_after;		/* recorded at deactivation */
	u64 deactivated_ns;
	bool at_activation;		/* began at activation, not at a mount (live.c) */
	char fs_type[32];
	char id[BDSNAP_SESSION_ID_LEN];
	char identity[BDSNAP_IDENTITY_LEN];	/* the device's, at open; or "" */

	spinlock_t lock;
	u32 state;			/* BDSNAP_SESSION_OPEN or _FAILED */
	int error;
	const char *error_what;
	/*
	 * FAILED but the failure is not yet recorded in the store: writes
	 * wait (fail_waiters) so that none reaches the device unsaved while
	 * the store still reads as exact. Bounded by the watchdog.
	 */
	bool failing;
	unsigned long failed_at;	/* jiffies */
	bool fail_recorded;		/* store worker: the store says failed */
	bool discard_refused;		/* logged once (tracker.c) */
	bool meta_stale;		/* the store worker rewrites meta.json */
	struct bdsnap_chunkmap map;	/* chunks claimed this session */
	struct rb_root_cached inflight;	/* extents not yet durable */
	struct list_head outstanding;	/* the same extents, in claim order */
	struct list_head store_queue;	/* read, waiting for the store worker */
	struct list_head fail_waiters;	/* ops held while failing */
	unsigned long store_busy_since;	/* jiffies | 1 while in store I/O, else 0 */
	u64 pending_bytes;		/* pre-images in memory */
	atomic64_t chunks_saved;	/* written to the store */
	atomic64_t bytes_saved;

	struct work_struct store_work;
	struct delayed_work close_work;	/* a close the unmount could not wait for */
	bool close_failed_mount;
	struct bdsnap_store store;
};

/* One session's part of a held bio. */
struct bdsnap_oppart {
	struct bdsnap_session *s;	/* holds s->users */
	u64 first, last;		/* chunk range */
	u64 cursor;			/* next chunk to look at */
};

struct bdsnap_op {
	struct bio *bio;
	atomic_t pending;		/* analysis + extents it claimed */
	unsigned int nr, cur;		/* targets; the one being analysed */
	bool from_throttle;		/* resumed by the throttle: go first */
	gfp_t gfp;
	unsigned long parked_at;	/* jiffies, first throttle park, or 0 */
	struct list_head park;		/* extent waiters, throttle or fail list */
	struct work_struct work;	/* resumes the analysis */
	struct bdsnap_extent *spare;	/* preallocated for the next claim */
	struct bdsnap_oppart t[];
};

struct bdsnap_extent {
	struct rb_node rb;		/* s->inflight while reading */
	u64 first, last, subtree_last;	/* chunk indexes */
	struct list_head node;		/* s->outstanding */
	struct list_head qnode;		/* start list, then s->store_queue */
	struct list_head waiters;	/* ops waiting for this read */
	struct bdsnap_session *s;	/* holds s->users */
	struct bdsnap_op *op;		/* claimer, held until durable; s->lock */
	struct block_device *bdev;	/* the held bio's device */
	sector_t sector;		/* read position on bdev */
	unsigned long claimed_at;	/* jiffies: the watchdog's clock */
	bool reserved;			/* s->lock: bytes count against the cap */
	u32 bytes;			/* chunk multiple; held of the memory cap */
	u32 valid;			/* bytes inside the device */
	u32 nr_pages;
	blk_status_t status;
	struct work_struct work;
	struct bio_vec *bvec;
	struct bio bio;			/* last: the read */
};

/* registry.c */
void bdsnap_dev_put(struct bdsnap_dev *dev);
struct bdsnap_dev *bdsnap_dev_get_by_path(const char *path);
/* What a retired device leaves for bdsnap_retired_finish(), outside reg_mutex. */
struct bdsnap_retired {
	struct bdsnap_session *last;	/* its last session, or NULL */
	struct path root;		/* its store root reference */
};
void bdsnap_dev_retire(struct bdsnap_dev *dev, struct bdsnap_retired *r);
void bdsnap_retired_finish(struct bdsnap_retired *r);
bool bdsnap_disk_filter(const struct gendisk *disk);
void bdsnap_filter_add(dev_t disk);
void bdsnap_filter_rebuild(void);		/* reg_mutex held */
int bdsnap_store_conflict(const struct path *root, const struct bdsnap_span *span,
			  const struct bdsnap_file_id *file);
int bdsnap_call_in_worker(int (*fn)(void *), void *arg);
void bdsnap_sanitize_name(const char *path, char *out, size_t size);

static inline bool bdsnap_spans_overlap(const struct bdsnap_span *a,
					const struct bdsnap_span *b)
{
	return a->disk == b->disk && a->start < b->start + b->nr &&
	       b->start < a->start + a->nr;
}

static inline dev_t bdsnap_disk_devt(const struct gendisk *disk)
{
	return MKDEV(disk->major, disk->first_minor);
}

/* loopdev.c */
int bdsnap_loopdev_init(void);
void bdsnap_loopdev_exit(void);
int bdsnap_loop_backing(dev_t loop, struct bdsnap_file_id *id, u64 *diskseq);
void bdsnap_loop_bind(dev_t loop, u64 diskseq, struct bdsnap_dev *dev);
struct bdsnap_dev *bdsnap_loop_lookup(const struct gendisk *disk, bool count);
void bdsnap_loop_forget(struct bdsnap_dev *dev);
void bdsnap_loop_settle(void);
void bdsnap_loop_scan(struct bdsnap_dev *dev);

/* coverage.c */
struct bdsnap_dev *bdsnap_dev_for_mount(dev_t devt, dev_t *target);

/* hook.c */
int bdsnap_hooks_init(void);
void bdsnap_hooks_exit(void);

/* session.c */
struct fs_context;
struct bdsnap_session *bdsnap_mount_begin(struct fs_context *fc);
void bdsnap_mount_end(struct bdsnap_session *s, int ret, struct fs_context *fc);
struct bdsnap_session *bdsnap_open_begin(struct bdsnap_dev *dev, dev_t devt,
					 dev_t target, const char *fs_type,
					 struct super_block *freeze);
void bdsnap_open_end(struct bdsnap_session *s, struct super_block *sb);
struct bdsnap_session *bdsnap_umount_begin(struct super_block *sb, bool *last);
void bdsnap_umount_end(struct bdsnap_session *s, bool last);
bool __bdsnap_session_fail(struct bdsnap_session *s, int err, const char *what);
void bdsnap_session_fail(struct bdsnap_session *s, int err, const char *what);
void bdsnap_session_put(struct bdsnap_session *s);

/* meta.c */
int bdsnap_meta_render(struct bdsnap_session *s, char *buf, size_t size);
void bdsnap_last_free(struct bdsnap_session *s);
void bdsnap_record_deactivation(struct bdsnap_session *last,
				const struct path *root);

static inline void bdsnap_session_get(struct bdsnap_session *s)
{
	atomic_inc(&s->users);
}

/* tracker.c */
bool bdsnap_cow_submit(struct bio *bio);

/* cow.c */
int bdsnap_cow_init(void);
void bdsnap_cow_exit(void);
struct bdsnap_op *bdsnap_op_alloc(struct bio *bio, unsigned int nr, gfp_t gfp);
int bdsnap_op_run(struct bdsnap_op *op);
int bdsnap_op_defer(struct bdsnap_op *op);
void bdsnap_cow_session_init(struct bdsnap_session *s);
void bdsnap_cow_fail(struct bdsnap_session *s);
void bdsnap_cow_release(struct bdsnap_session *s);
void bdsnap_ext_pages_free(struct bdsnap_extent *e);
void bdsnap_ext_settle(struct bdsnap_extent *e);

/* throttle.c */
enum { OP_DONE, OP_PARKED, OP_THROTTLED };
int bdsnap_throttle_init(void);
void bdsnap_throttle_exit(void);
bool bdsnap_mem_reserve(u64 bytes);
void bdsnap_mem_release(u64 bytes);
u64 bdsnap_mem_limit(void);
bool bdsnap_throttle_waiting(void);
void bdsnap_throttle_park(struct bdsnap_op *op);
void bdsnap_throttle_recheck(u64 bytes);
void bdsnap_throttle_retry_later(void);
void bdsnap_throttle_forget(struct bdsnap_session *s, struct list_head *out);
void bdsnap_watchdog_arm(void);
void bdsnap_watchdog_check(struct bdsnap_session *s);

/* chunkmap.c */
void bdsnap_chunkmap_init(struct bdsnap_chunkmap *m, u64 nr_chunks);
void bdsnap_chunkmap_destroy(struct bdsnap_chunkmap *m);
int bdsnap_chunkmap_prepare(struct bdsnap_chunkmap *m, u64 first, u64 last,
			    gfp_t gfp);
u64 bdsnap_chunkmap_next_clear(struct bdsnap_chunkmap *m, u64 from, u64 to);
u64 bdsnap_chunkmap_clear_run(struct bdsnap_chunkmap *m, u64 from, u64 to);
void bdsnap_chunkmap_set(struct bdsnap_chunkmap *m, u64 first, u64 n);

/* store.c */
int bdsnap_store_open(struct bdsnap_session *s, const char *name);
int bdsnap_store_append(struct bdsnap_session *s, struct bdsnap_extent *e);
int bdsnap_store_sync(struct bdsnap_session *s);
int bdsnap_store_mark_failed(struct bdsnap_session *s);
int bdsnap_store_write_meta(struct bdsnap_session *s);
int bdsnap_store_rewrite_meta(struct bdsnap_session *s, const struct path *root);
void bdsnap_store_work(struct work_struct *work);
void bdsnap_store_close(struct bdsnap_session *s, bool discard);
u32 bdsnap_crc32c(const void *buf, size_t len);

/* store_fs.c */
int bdsnap_write_all(struct file *f, const void *buf, size_t len, loff_t *pos);
int bdsnap_root_open(struct path *root, bool create);
int bdsnap_mkdir_at(const struct path *dir, const char *name, umode_t mode,
		    struct path *out);
int bdsnap_remove_at(const struct path *dir, const char *name, bool is_dir);
void bdsnap_fsync_at(const struct path *dir);
struct file *bdsnap_create_at(const struct path *dir, const char *name);
struct file *bdsnap_open_at(const struct path *dir, const char *rel);

#endif /* _BDSNAP_CORE_H */
