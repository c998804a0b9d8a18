// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: which loop devices are backed by an activated image file.
 *
 * struct loop_device is private to drivers/block/loop.c, so we never look
 * inside it (no copied struct layouts, no gendisk->private_data). Hooking
 * loop_configure() would miss devices attached before activation, and it is
 * a static function of a module that may not be loaded, whose signature
 * changed between our kernels. Instead we use what the loop driver
 * publishes for user space, a stable ABI
 * (Documentation/ABI/testing/sysfs-block-loop):
 *
 *   /sys/dev/block/<maj>:<min>/loop/backing_file   present while bound
 *   /sys/dev/block/<maj>:<min>/diskseq             bumped on every attach,
 *                                                  detach and fd change
 *
 * A kworker (init's root and mount namespace, kernel credentials) reads the
 * backing file's path, resolves it, and compares device + inode number with
 * the activated file. Reading diskseq before and after detects a
 * reconfiguration in between. A binding is cached as (loop dev_t, diskseq)
 * -> activated file, so it can never go stale: a re-attached device has a
 * new diskseq and is looked at afresh.
 *
 * Mount resolves synchronously: it runs in process context and must know
 * before the filesystem opens the device. Activation scans the loop devices
 * that exist. The bio hook cannot do file I/O; for a write to a loop device
 * it has no answer for, it counts the write in a small table and a work
 * item resolves the device later and adds the count where it belongs.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/namei.h>
#include <linux/major.h>
#include <linux/string.h>
#include <linux/ctype.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "core.h"
#include "compat.h"
#include "store_stack.h"

#define LOOP_CACHE_SIZE		64
#define LOOP_PENDING_SIZE	16
#define LOOP_SCAN_MAX		256

struct bdsnap_loop_binding {
	dev_t devt;
	u64 diskseq;
	struct bdsnap_dev *dev;		/* NULL: not an activated file */
};

struct bdsnap_loop_pending {
	dev_t devt;
	u64 diskseq;
	u64 writes;
};

static DEFINE_SPINLOCK(bdsnap_loop_lock);
static struct bdsnap_loop_binding bdsnap_loop_cache[LOOP_CACHE_SIZE];
static unsigned int bdsnap_loop_next;
static struct bdsnap_loop_pending bdsnap_loop_pend[LOOP_PENDING_SIZE];
static struct work_struct bdsnap_loop_work;

/* Read a small sysfs file into buf (NUL-terminated, newline stripped). */
int bdsnap_read_sysfs(const char *path, char *buf, size_t size)
{
	struct file *f;
	loff_t pos = 0;
	ssize_t n;

	f = filp_open(path, O_RDONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	n = kernel_read(f, buf, size - 1, &pos);
	fput(f);
	if (n < 0)
		return n;
	buf[n] = '\0';
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return n;
}

static int bdsnap_read_diskseq(dev_t devt, char *buf, size_t size, u64 *seq)
{
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/diskseq",
		 MAJOR(devt), MINOR(devt));
	ret = bdsnap_read_sysfs(path, buf, size);
	if (ret < 0)
		return ret;
	return kstrtou64(buf, 10, seq);
}

/*
 * The file backing loop device 'loop', as a path the caller must path_put(),
 * and the diskseq it holds for. -ENXIO if the device is not bound. Call from
 * a kworker (bdsnap_call_in_worker() or our own work items).
 */
int bdsnap_loop_backing_path(dev_t loop, struct path *p, u64 *diskseq)
{
	char path[80];
	u64 seq1, seq2;
	char *buf;
	int ret, tries;

	buf = kmalloc(PATH_MAX + 1, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/backing_file",
		 MAJOR(loop), MINOR(loop));
	for (tries = 0; tries < 3; tries++) {
		ret = bdsnap_read_diskseq(loop, buf, PATH_MAX, &seq1);
		if (ret)
			break;
		ret = bdsnap_read_sysfs(path, buf, PATH_MAX + 1);
		if (ret == -ENOENT || ret == 0) {
			ret = -ENXIO;
			break;
		}
		if (ret < 0)
			break;
		ret = kern_path(buf, LOOKUP_FOLLOW, p);
		if (ret)
			break;	/* e.g. "... (deleted)": no longer our file */
		ret = bdsnap_read_diskseq(loop, buf, PATH_MAX, &seq2);
		if (!ret && seq1 == seq2) {
			*diskseq = seq1;
			break;
		}
		path_put(p);
		if (ret)
			break;
		ret = -EAGAIN;
	}
	kfree(buf);
	return ret;
}

/* The identity of the file backing loop device 'loop'; as above. */
int bdsnap_loop_backing(dev_t loop, struct bdsnap_file_id *id, u64 *diskseq)
{
	struct inode *inode;
	struct path p;
	int ret;

	ret = bdsnap_loop_backing_path(loop, &p, diskseq);
	if (ret)
		return ret;
	inode = d_backing_inode(p.dentry);
	id->sdev = inode->i_sb->s_dev;
	id->ino = inode->i_ino;
	path_put(&p);
	return 0;
}

/* Remember what (loop, diskseq) is; dev NULL means "not ours". */
void bdsnap_loop_bind(dev_t loop, u64 diskseq, struct bdsnap_dev *dev)
{
	struct bdsnap_loop_binding *b = NULL;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&bdsnap_loop_lock, flags);
	for (i = 0; i < LOOP_CACHE_SIZE; i++) {
		if (bdsnap_loop_cache[i].devt == loop) {
			b = &bdsnap_loop_cache[i];
			break;
		}
	}
	if (!b) {
		b = &bdsnap_loop_cache[bdsnap_loop_next];
		bdsnap_loop_next = (bdsnap_loop_next + 1) % LOOP_CACHE_SIZE;
	}
	b->devt = loop;
	b->diskseq = diskseq;
	b->dev = dev;
	spin_unlock_irqrestore(&bdsnap_loop_lock, flags);
}

/* The device leaves the registry: drop every binding that names it. */
void bdsnap_loop_forget(struct bdsnap_dev *dev)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&bdsnap_loop_lock, flags);
	for (i = 0; i < LOOP_CACHE_SIZE; i++) {
		if (bdsnap_loop_cache[i].dev == dev)
			memset(&bdsnap_loop_cache[i], 0, sizeof(bdsnap_loop_cache[i]));
	}
	spin_unlock_irqrestore(&bdsnap_loop_lock, flags);
}

/*
 * From the bio hook, under rcu_read_lock(): the activated file behind this
 * loop disk, or NULL. An unknown (disk, diskseq) with count set has the
 * write remembered and resolved later.
 */
struct bdsnap_dev *bdsnap_loop_lookup(const struct gendisk *disk, bool count)
{
	dev_t devt = bdsnap_disk_devt(disk);
	u64 seq = READ_ONCE(disk->diskseq);
	struct bdsnap_dev *dev = NULL;
	bool known = false, kick = false;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&bdsnap_loop_lock, flags);
	for (i = 0; i < LOOP_CACHE_SIZE; i++) {
		struct bdsnap_loop_binding *b = &bdsnap_loop_cache[i];

		if (b->devt == devt && b->diskseq == seq) {
			dev = b->dev;
			known = true;
			break;
		}
	}
	if (!known && count) {
		struct bdsnap_loop_pending *free = NULL, *p = NULL;

		for (i = 0; i < LOOP_PENDING_SIZE; i++) {
			struct bdsnap_loop_pending *q = &bdsnap_loop_pend[i];

			if (q->writes && q->devt == devt && q->diskseq == seq) {
				p = q;
				break;
			}
			if (!q->writes && !free)
				free = q;
		}
		if (!p && free) {
			p = free;
			p->devt = devt;
			p->diskseq = seq;
			kick = true;
		}
		if (p)
			p->writes++;
		else
			pr_warn_ratelimited("too many unresolved loop devices; a write to %u:%u is not counted\n",
					    MAJOR(devt), MINOR(devt));
	}
	spin_unlock_irqrestore(&bdsnap_loop_lock, flags);
	if (kick)
		queue_work(bdsnap_ctl_wq, &bdsnap_loop_work);
	return dev;
}

static struct bdsnap_dev *bdsnap_file_dev(const struct bdsnap_file_id *id)
{
	struct bdsnap_dev *dev;

	lockdep_assert_held(&bdsnap_reg_mutex);
	list_for_each_entry(dev, &bdsnap_devs, node) {
		if (dev->kind == BDSNAP_KIND_FILE && dev->file.sdev == id->sdev &&
		    dev->file.ino == id->ino)
			return dev;
	}
	return NULL;
}

static void bdsnap_loop_resolve(struct work_struct *work)
{
	for (;;) {
		struct bdsnap_loop_pending p = { 0 };
		struct bdsnap_file_id id;
		struct bdsnap_dev *dev = NULL;
		unsigned long flags;
		unsigned int i;
		u64 seq;
		int ret;

		spin_lock_irqsave(&bdsnap_loop_lock, flags);
		for (i = 0; i < LOOP_PENDING_SIZE; i++) {
			if (bdsnap_loop_pend[i].writes) {
				p = bdsnap_loop_pend[i];
				break;
			}
		}
		spin_unlock_irqrestore(&bdsnap_loop_lock, flags);
		if (!p.writes)
			break;

		/* It resolves the backing file's path: as init sees it (compat.h). */
		bdsnap_with_init_fs()
			ret = bdsnap_loop_backing(p.devt, &id, &seq);

		mutex_lock(&bdsnap_reg_mutex);
		/* Writes to a binding that is already gone cannot be placed. */
		if (!ret && seq == p.diskseq) {
			dev = bdsnap_file_dev(&id);
			bdsnap_loop_bind(p.devt, seq, dev);
		}
		spin_lock_irqsave(&bdsnap_loop_lock, flags);
		/* Count what arrived while we were resolving, too. */
		p.writes = bdsnap_loop_pend[i].writes;
		memset(&bdsnap_loop_pend[i], 0, sizeof(bdsnap_loop_pend[i]));
		spin_unlock_irqrestore(&bdsnap_loop_lock, flags);
		if (dev) {
			atomic64_add(p.writes, &dev->unmounted_writes);
			WRITE_ONCE(dev->bound, p.devt);
		}
		mutex_unlock(&bdsnap_reg_mutex);
	}
}

/* Let every write counted so far land on its device (mount does this). */
void bdsnap_loop_settle(void)
{
	flush_work(&bdsnap_loop_work);
}

/* ---- activation: bind the loop devices that already exist ---- */

struct bdsnap_scan_ctx {
	struct dir_context ctx;
	char (*names)[32];
	unsigned int nr;
};

static bool bdsnap_scan_actor(struct dir_context *ctx, const char *name,
			      int len, loff_t off, u64 ino, unsigned int type)
{
	struct bdsnap_scan_ctx *sc = container_of(ctx, struct bdsnap_scan_ctx, ctx);

	if (len > 4 && len < 32 && !strncmp(name, "loop", 4) &&
	    isdigit(name[4])) {
		if (sc->nr >= LOOP_SCAN_MAX)
			return false;
		memcpy(sc->names[sc->nr], name, len);
		sc->names[sc->nr][len] = '\0';
		sc->nr++;
	}
	return true;
}

static int bdsnap_loop_scan_fn(void *arg)
{
	struct bdsnap_dev *dev = arg;
	struct bdsnap_scan_ctx sc = { .ctx.actor = bdsnap_scan_actor };
	char path[64], buf[32];
	struct file *dir;
	unsigned int i;
	int ret;

	sc.names = kcalloc(LOOP_SCAN_MAX, sizeof(*sc.names), GFP_KERNEL);
	if (!sc.names)
		return -ENOMEM;
	dir = filp_open("/sys/block", O_RDONLY | O_DIRECTORY, 0);
	if (IS_ERR(dir)) {
		kfree(sc.names);
		return PTR_ERR(dir);
	}
	ret = iterate_dir(dir, &sc.ctx);
	fput(dir);

	for (i = 0; i < sc.nr; i++) {
		struct bdsnap_file_id id;
		unsigned int maj, min;
		u64 seq;

		snprintf(path, sizeof(path), "/sys/block/%s/dev", sc.names[i]);
		if (bdsnap_read_sysfs(path, buf, sizeof(buf)) <= 0 ||
		    sscanf(buf, "%u:%u", &maj, &min) != 2)
			continue;
		if (bdsnap_loop_backing(MKDEV(maj, min), &id, &seq))
			continue;
		if (id.sdev != dev->file.sdev || id.ino != dev->file.ino)
			continue;
		mutex_lock(&bdsnap_reg_mutex);
		if (dev->listed) {
			bdsnap_loop_bind(MKDEV(maj, min), seq, dev);
			WRITE_ONCE(dev->bound, MKDEV(maj, min));
		}
		mutex_unlock(&bdsnap_reg_mutex);
	}
	kfree(sc.names);
	return ret;
}

/* Best effort: a device we miss is still found on its first mount or write. */
void bdsnap_loop_scan(struct bdsnap_dev *dev)
{
	refcount_inc(&dev->ref);
	bdsnap_call_in_worker(bdsnap_loop_scan_fn, dev);
	bdsnap_dev_put(dev);
}

int bdsnap_loopdev_init(void)
{
	INIT_WORK(&bdsnap_loop_work, bdsnap_loop_resolve);
	return 0;
}

void bdsnap_loopdev_exit(void)
{
	cancel_work_sync(&bdsnap_loop_work);
	memset(bdsnap_loop_cache, 0, sizeof(bdsnap_loop_cache));
	memset(bdsnap_loop_pend, 0, sizeof(bdsnap_loop_pend));
}
