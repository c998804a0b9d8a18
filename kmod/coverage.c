// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: which activated device a mount belongs to.
 *
 * A mount opens a session when the device it mounts is an activated
 * device, or lies on one:
 *
 *   a partition or whole disk overlapping an activated block device;
 *   a loop device, or a partition of one, backed by an activated image;
 *   a loop device backed by a block device: go on with that device;
 *   dm and md devices: go on with each device in /sys/dev/block/M:m/slaves
 *   (the holder links bd_link_disk_holder() makes).
 *
 * The session is the activated device's, over its whole span: the stacked
 * device's writes reach it as bios (tracker.c), so saving those keeps the
 * restore of the activated device exact. dm tables are not read: a dm
 * device counts as lying on all of each slave. The first activated device
 * found wins; one stacked over several activated devices (LVM across two
 * activated PVs) opens a session of the first only, and the writes to the
 * others count as outside any mount, which their restorer reports.
 *
 * SG_IO and NVMe passthrough do not go through bios and are never seen.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/namei.h>
#include <linux/major.h>
#include <linux/rculist.h>

#include "core.h"
#include "compat.h"
#include "store_stack.h"

#define COVER_DEPTH_MAX	8
#define COVER_NODES_MAX	64
#define COVER_FANOUT	32

struct bdsnap_cover {
	dev_t devt;			/* the mounted device */
	struct bdsnap_dev *dev;		/* found, with a reference */
	dev_t target;			/* the device its session covers */
	u64 loop_seq;			/* FILE: diskseq of the loop bound */
	unsigned int nodes;
};

/* The activated device matching a span (BLOCK) or a file (FILE), or NULL. */
static struct bdsnap_dev *cover_find(const struct bdsnap_span *span,
				     const struct bdsnap_file_id *file)
{
	struct bdsnap_dev *dev, *found = NULL;

	rcu_read_lock();
	list_for_each_entry_rcu(dev, &bdsnap_devs, node) {
		bool match = span ?
			dev->kind == BDSNAP_KIND_BLOCK && bdsnap_spans_overlap(&dev->span, span) :
			dev->kind == BDSNAP_KIND_FILE && dev->file.sdev == file->sdev &&
			dev->file.ino == file->ino;

		/* A device being retired may be at zero already: skip it. */
		if (match && refcount_inc_not_zero(&dev->ref)) {
			found = dev;
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

static int cover_bdev(struct bdsnap_cover *c, dev_t devt, unsigned int depth);

/* A loop disk: an activated image, or a block device to go on with. */
static int cover_loop(struct bdsnap_cover *c, dev_t disk, unsigned int depth)
{
	struct bdsnap_file_id id;
	struct inode *inode;
	struct path p;
	dev_t lower = 0;
	u64 seq;
	int ret;

	ret = bdsnap_loop_backing_path(disk, &p, &seq);
	if (ret)
		return ret == -ENOMEM ? ret : 0;	/* unbound or gone */
	inode = d_backing_inode(p.dentry);
	if (S_ISREG(inode->i_mode)) {
		id.sdev = inode->i_sb->s_dev;
		id.ino = inode->i_ino;
		c->dev = cover_find(NULL, &id);
		if (c->dev) {
			c->target = disk;
			c->loop_seq = seq;
		}
	} else if (S_ISBLK(inode->i_mode)) {
		lower = inode->i_rdev;
	}
	path_put(&p);
	return lower ? cover_bdev(c, lower, depth + 1) : 0;
}

static int cover_bdev(struct bdsnap_cover *c, dev_t devt, unsigned int depth)
{
	struct bdsnap_span span;
	struct bdsnap_bdev b;
	unsigned int i, nr;
	char dir[64];
	dev_t *slaves;
	bool loop;
	int ret;

	if (depth >= COVER_DEPTH_MAX || ++c->nodes > COVER_NODES_MAX) {
		pr_warn("%u:%u: its device stack is too deep or too wide to look for activated devices\n",
			MAJOR(c->devt), MINOR(c->devt));
		return 0;
	}
	ret = bdsnap_bdev_open_ro(devt, &b);
	if (ret)
		return ret == -ENOMEM ? ret : 0;
	span.disk = bdsnap_disk_devt(b.bdev->bd_disk);
	span.start = b.bdev->bd_start_sect;
	span.nr = bdev_nr_sectors(b.bdev);
	loop = b.bdev->bd_disk->major == LOOP_MAJOR;
	bdsnap_bdev_close(&b);

	c->dev = cover_find(&span, NULL);
	if (c->dev) {
		c->target = c->dev->devt;
		return 0;
	}
	if (loop)
		return cover_loop(c, span.disk, depth);

	slaves = kcalloc(COVER_FANOUT, sizeof(*slaves), GFP_KERNEL);
	if (!slaves)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/slaves",
		 MAJOR(span.disk), MINOR(span.disk));
	ret = bdsnap_sysfs_devs(dir, slaves, COVER_FANOUT, &nr);
	if (ret == -E2BIG) {
		pr_warn("%u:%u: stacks on too many devices to look for activated devices\n",
			MAJOR(c->devt), MINOR(c->devt));
		ret = 0;
	}
	for (i = 0; i < nr && !ret && !c->dev; i++)
		ret = cover_bdev(c, slaves[i], depth + 1);
	kfree(slaves);
	return ret;
}

static int bdsnap_cover_fn(void *arg)
{
	struct bdsnap_cover *c = arg;

	return cover_bdev(c, c->devt, 0);
}

/*
 * The activated device a mount of devt belongs to, with a reference, and in
 * *target the device its session covers (the activated block device, or
 * the loop disk through which an activated image is mounted). NULL if none.
 */
struct bdsnap_dev *bdsnap_dev_for_mount(dev_t devt, dev_t *target)
{
	struct bdsnap_cover c = { .devt = devt };
	struct bdsnap_dev *dev;

	/* The common case, without a kworker round trip. */
	mutex_lock(&bdsnap_reg_mutex);
	list_for_each_entry(dev, &bdsnap_devs, node) {
		if (dev->kind == BDSNAP_KIND_BLOCK && dev->devt == devt) {
			refcount_inc(&dev->ref);
			mutex_unlock(&bdsnap_reg_mutex);
			*target = devt;
			return dev;
		}
	}
	mutex_unlock(&bdsnap_reg_mutex);

	/* Writes counted before this mount land on their device first. */
	if (atomic_read(&bdsnap_nr_file_devs))
		bdsnap_loop_settle();
	bdsnap_call_in_worker(bdsnap_cover_fn, &c);
	if (!c.dev)
		return NULL;	/* not ours, or no memory to look: unprotected */
	if (c.dev->kind == BDSNAP_KIND_FILE) {
		bool listed;

		/* A device deactivated meanwhile must not be bound again. */
		mutex_lock(&bdsnap_reg_mutex);
		listed = c.dev->listed;
		if (listed) {
			WRITE_ONCE(c.dev->bound, c.target);
			bdsnap_loop_bind(c.target, c.loop_seq, c.dev);
		}
		mutex_unlock(&bdsnap_reg_mutex);
		if (!listed) {
			bdsnap_dev_put(c.dev);
			return NULL;
		}
	}
	if (c.target != devt)
		pr_info("%s: the mount of %u:%u lies on it (through %u:%u)\n",
			c.dev->name, MAJOR(devt), MINOR(devt),
			MAJOR(c.target), MINOR(c.target));
	*target = c.target;
	return c.dev;
}
