// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the store can never wedge the origin.
 *
 * A flush on an activated device is held until the pre-images before it are
 * fsynced in the store. If writing the store needs the activated device to
 * make progress, both wait for ever: a store on a loop image kept on the
 * activated filesystem fsyncs through loop into that filesystem's journal,
 * whose commit is an origin flush that waits for the store.
 *
 * So at activation and again before every session we walk everything the
 * store root is written through, from its filesystem down:
 *
 *   filesystem  ->  its block device (s_bdev)
 *   loop device ->  the filesystem of its backing file (loopdev.c)
 *   any disk    ->  the devices it stacks on: /sys/dev/block/M:m/slaves,
 *                   the links bd_link_disk_holder() makes for dm and md
 *                   (Documentation/ABI/stable/sysfs-block)
 *
 * and refuse if the activated device (any overlap of its sectors on its
 * disk), or for an image file the filesystem holding it, or the image
 * itself, is on the way. A store filesystem without a block device (NFS,
 * FUSE, virtiofs, tmpfs, overlayfs) is refused as well: we cannot see what
 * it is written through, and memory or the network is no place for a store.
 *
 * btrfs has no s_bdev: its devices are the links in
 * /sys/fs/btrfs/<fsid>/devices/, found through the device name in s_id.
 * dm tables are not read: a dm device stacked on a disk or partition counts
 * as covering all of it. Drivers that do not register holders (bcache, drbd,
 * nbd, iSCSI, ublk) end the walk at themselves.
 *
 * Everything runs in a kworker (init's root and mount namespace) with no
 * bdsnap lock held; devices are opened shared and read-only, and every
 * reference is dropped before the function that took it returns.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/namei.h>
#include <linux/dcache.h>
#include <linux/major.h>
#include <linux/string.h>

#include "core.h"
#include "compat.h"
#include "store_stack.h"

/* Devices on one path from the store down, and in the whole walk. */
#define STACK_DEPTH_MAX	8
#define STACK_NODES_MAX	64
/* Entries of one slaves or btrfs devices directory we look at. */
#define STACK_FANOUT_MAX 32
#define STACK_NAME_LEN	32
#define STACK_TRAIL_MAX	(2 * STACK_DEPTH_MAX + 2)

struct bdsnap_walk {
	const struct bdsnap_span *span;		/* BLOCK: the activated span */
	const struct bdsnap_file_id *file;	/* FILE: the activated image */
	const struct path *root;		/* the store root, held */
	struct bdsnap_span fspan;		/* FILE: its filesystem's device */
	bool have_fspan;
	unsigned int nodes;
	unsigned int trail_len;
	char trail[STACK_TRAIL_MAX][STACK_NAME_LEN];
	char msg[384];				/* the refusal, once */
};

static __printf(2, 3) void walk_push(struct bdsnap_walk *w, const char *fmt, ...)
{
	va_list ap;

	if (w->trail_len < STACK_TRAIL_MAX) {
		va_start(ap, fmt);
		vsnprintf(w->trail[w->trail_len], STACK_NAME_LEN, fmt, ap);
		va_end(ap);
	}
	w->trail_len++;
}

static void walk_pop(struct bdsnap_walk *w)
{
	w->trail_len--;
}

/* Record why we refuse: "<fs> -> <dev> -> ..., <reason>". Returns err. */
static int walk_refuse(struct bdsnap_walk *w, int err, const char *reason)
{
	size_t n = 0;
	unsigned int i;

	if (w->msg[0])
		return err;
	for (i = 0; i < min_t(unsigned int, w->trail_len, STACK_TRAIL_MAX); i++)
		n += scnprintf(w->msg + n, sizeof(w->msg) - n, "%s%s",
			       i ? " -> " : "", w->trail[i]);
	scnprintf(w->msg + n, sizeof(w->msg) - n, ", %s", reason);
	return err;
}

static int walk_fs(struct bdsnap_walk *w, struct super_block *sb,
		   unsigned int depth);

/* A loop device: go on with the filesystem of its backing file. */
static int walk_loop(struct bdsnap_walk *w, dev_t devt, unsigned int depth)
{
	struct inode *inode;
	struct path p;
	u64 seq;
	int ret;

	ret = bdsnap_loop_backing_path(devt, &p, &seq);
	if (ret == -ENXIO)
		return 0;	/* unbound: nothing is written through it */
	if (ret == -ENOMEM)
		return ret;
	if (ret)
		return walk_refuse(w, -EXDEV,
				   "whose backing file cannot be found (deleted or outside init's mount namespace)");

	/* The identity as activation saw it (d_backing_inode, as loopdev.c). */
	inode = d_backing_inode(p.dentry);
	if (w->file && inode->i_sb->s_dev == w->file->sdev &&
	    inode->i_ino == w->file->ino) {
		ret = walk_refuse(w, -EXDEV, "which is the activated image file");
	} else if (w->file && p.dentry->d_sb->s_dev == w->file->sdev) {
		ret = walk_refuse(w, -EXDEV,
				  "whose backing file is on the filesystem holding the activated image");
	} else {
		/* Through overlayfs, the filesystem the data really goes to. */
		ret = walk_fs(w, d_real_inode(p.dentry)->i_sb, depth);
	}
	path_put(&p);
	return ret;
}

struct bdsnap_names {
	struct dir_context ctx;
	char (*names)[STACK_NAME_LEN];
	unsigned int nr;
	bool truncated;
};

static bool walk_names_actor(struct dir_context *ctx, const char *name,
			     int len, loff_t off, u64 ino, unsigned int type)
{
	struct bdsnap_names *nm = container_of(ctx, struct bdsnap_names, ctx);

	if (name[0] == '.' || len >= STACK_NAME_LEN)
		return true;
	if (nm->nr >= STACK_FANOUT_MAX) {
		nm->truncated = true;
		return false;
	}
	memcpy(nm->names[nm->nr], name, len);
	nm->names[nm->nr][len] = '\0';
	nm->nr++;
	return true;
}

/* The entry names of a sysfs directory; -ENOENT if it does not exist. */
static int walk_list_dir(const char *dir, struct bdsnap_names *nm)
{
	struct file *f;
	int ret;

	f = filp_open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	ret = iterate_dir(f, &nm->ctx);
	fput(f);
	return ret;
}

/*
 * The block devices a sysfs directory of device links lists (a disk's
 * slaves/, btrfs's devices/), read through each entry's "dev" file. 0 with
 * *nr = 0 if the directory does not exist; -E2BIG if it lists more than
 * max entries (STACK_FANOUT_MAX at most).
 */
int bdsnap_sysfs_devs(const char *dir, dev_t *devs, unsigned int max,
		      unsigned int *nr)
{
	struct bdsnap_names nm = { .ctx.actor = walk_names_actor };
	char *path;
	unsigned int i;
	int ret;

	*nr = 0;
	nm.names = kcalloc(STACK_FANOUT_MAX, STACK_NAME_LEN, GFP_KERNEL);
	path = kmalloc(PATH_MAX, GFP_KERNEL);
	ret = -ENOMEM;
	if (!nm.names || !path)
		goto out;
	ret = walk_list_dir(dir, &nm);
	if (ret == -ENOENT || ret == -ENOTDIR) {
		ret = 0;	/* no holder directory: nothing below */
		goto out;
	}
	if (ret)
		goto out;
	if (nm.truncated || nm.nr > max) {
		ret = -E2BIG;
		goto out;
	}
	for (i = 0; i < nm.nr; i++) {
		unsigned int maj, min;
		char num[24];

		snprintf(path, PATH_MAX, "%s/%s/dev", dir, nm.names[i]);
		if (bdsnap_read_sysfs(path, num, sizeof(num)) <= 0 ||
		    sscanf(num, "%u:%u", &maj, &min) != 2)
			continue;	/* not a block device entry */
		devs[(*nr)++] = MKDEV(maj, min);
	}
out:
	kfree(path);
	kfree(nm.names);
	return ret;
}

static int walk_bdev(struct bdsnap_walk *w, dev_t devt, unsigned int depth);

/* Walk every block device a sysfs directory of device links lists. */
static int walk_sysfs_devs(struct bdsnap_walk *w, const char *dir,
			   unsigned int depth, bool *found)
{
	unsigned int i, nr;
	dev_t *devs;
	int ret;

	devs = kcalloc(STACK_FANOUT_MAX, sizeof(*devs), GFP_KERNEL);
	if (!devs)
		return -ENOMEM;
	ret = bdsnap_sysfs_devs(dir, devs, STACK_FANOUT_MAX, &nr);
	if (ret == -E2BIG)
		ret = walk_refuse(w, -ELOOP, "which stacks on too many devices to check");
	for (i = 0; i < nr && !ret; i++) {
		if (found)
			*found = true;
		ret = walk_bdev(w, devs[i], depth);
	}
	kfree(devs);
	return ret;
}

/* One block device: is it (on) the activated device? Then what is below. */
static int walk_bdev(struct bdsnap_walk *w, dev_t devt, unsigned int depth)
{
	struct bdsnap_span ss;
	struct bdsnap_bdev b;
	char dir[64];
	bool loop;
	int ret;

	if (depth >= STACK_DEPTH_MAX || ++w->nodes > STACK_NODES_MAX)
		return walk_refuse(w, -ELOOP, "a device stack too deep or too wide to check");
	ret = bdsnap_bdev_open_ro(devt, &b);
	if (ret == -ENOMEM)
		return ret;
	if (ret) {
		walk_push(w, "%u:%u", MAJOR(devt), MINOR(devt));
		ret = walk_refuse(w, -EXDEV, "which cannot be opened to check it");
		walk_pop(w);
		return ret;
	}
	walk_push(w, "%pg", b.bdev);
	ss.disk = bdsnap_disk_devt(b.bdev->bd_disk);
	ss.start = b.bdev->bd_start_sect;
	ss.nr = bdev_nr_sectors(b.bdev);
	loop = b.bdev->bd_disk->major == LOOP_MAJOR;
	bdsnap_bdev_close(&b);

	if (w->span && bdsnap_spans_overlap(&ss, w->span)) {
		ret = walk_refuse(w, -EXDEV, "which overlaps the activated device");
	} else if (w->file && (devt == w->file->sdev ||
			       (w->have_fspan && bdsnap_spans_overlap(&ss, &w->fspan)))) {
		ret = walk_refuse(w, -EXDEV,
				  "which holds the filesystem of the activated image");
	} else if (loop) {
		ret = walk_loop(w, devt, depth + 1);
	} else {
		/* dm, md: the holder links live on the whole disk. */
		snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/slaves",
			 MAJOR(ss.disk), MINOR(ss.disk));
		ret = walk_sysfs_devs(w, dir, depth + 1, NULL);
	}
	walk_pop(w);
	return ret;
}

/* btrfs: the fsid directory that lists the device named in s_id. */
static int walk_btrfs(struct bdsnap_walk *w, struct super_block *sb,
		      unsigned int depth, bool *found)
{
	struct bdsnap_names nm = { .ctx.actor = walk_names_actor };
	char *path;
	unsigned int i;
	int ret;

	nm.names = kcalloc(STACK_FANOUT_MAX, STACK_NAME_LEN, GFP_KERNEL);
	path = kmalloc(PATH_MAX, GFP_KERNEL);
	ret = -ENOMEM;
	if (!nm.names || !path)
		goto out;
	ret = walk_list_dir("/sys/fs/btrfs", &nm);
	if (ret) {
		ret = ret == -ENOMEM ? ret : 0;	/* fall back to s_id */
		goto out;
	}
	for (i = 0; i < nm.nr; i++) {
		struct path p;

		snprintf(path, PATH_MAX, "/sys/fs/btrfs/%s/devices/%s",
			 nm.names[i], sb->s_id);
		if (kern_path(path, 0, &p))
			continue;
		path_put(&p);
		snprintf(path, PATH_MAX, "/sys/fs/btrfs/%s/devices", nm.names[i]);
		ret = walk_sysfs_devs(w, path, depth, found);
		break;
	}
out:
	kfree(path);
	kfree(nm.names);
	return ret;
}

/*
 * A filesystem without s_bdev that needs a device (btrfs): its devices
 * through sysfs, or at least the one s_id names.
 */
static int walk_fs_devices(struct bdsnap_walk *w, struct super_block *sb,
			   unsigned int depth)
{
	bool found = false;
	char path[96];
	char num[24];
	unsigned int maj, min;
	int ret;

	if (!strcmp(sb->s_type->name, "btrfs")) {
		ret = walk_btrfs(w, sb, depth, &found);
		if (ret || found)
			return ret;
	}
	snprintf(path, sizeof(path), "/sys/class/block/%s/dev", sb->s_id);
	if (bdsnap_read_sysfs(path, num, sizeof(num)) > 0 &&
	    sscanf(num, "%u:%u", &maj, &min) == 2)
		return walk_bdev(w, MKDEV(maj, min), depth);
	return walk_refuse(w, -ENOTBLK, "whose block devices cannot be found");
}

static int walk_fs(struct bdsnap_walk *w, struct super_block *sb,
		   unsigned int depth)
{
	int ret;

	walk_push(w, "%s", sb->s_type->name);
	if (w->file && sb->s_dev == w->file->sdev)
		ret = walk_refuse(w, -EXDEV,
				  "the filesystem holding the activated image");
	else if (sb->s_bdev)
		ret = walk_bdev(w, sb->s_bdev->bd_dev, depth);
	else if (sb->s_type->fs_flags & FS_REQUIRES_DEV)
		ret = walk_fs_devices(w, sb, depth);
	else if (!depth)
		ret = walk_refuse(w, -ENOTBLK,
				  "which has no block device (network, FUSE, memory): the store needs a disk");
	else
		ret = 0;	/* a loop image on such a filesystem ends here */
	walk_pop(w);
	return ret;
}

static int bdsnap_store_stack_fn(void *arg)
{
	struct bdsnap_walk *w = arg;

	/* The device of the image's filesystem, if it has one. */
	if (w->file && MAJOR(w->file->sdev)) {
		struct bdsnap_bdev b;

		if (!bdsnap_bdev_open_ro(w->file->sdev, &b)) {
			w->fspan.disk = bdsnap_disk_devt(b.bdev->bd_disk);
			w->fspan.start = b.bdev->bd_start_sect;
			w->fspan.nr = bdev_nr_sectors(b.bdev);
			w->have_fspan = true;
			bdsnap_bdev_close(&b);
		}
	}
	return walk_fs(w, w->root->dentry->d_sb, 0);
}

int bdsnap_store_stack_check(const char *name, const char *what,
			     const struct path *root,
			     const struct bdsnap_span *span,
			     const struct bdsnap_file_id *file)
{
	struct bdsnap_walk *w;
	int ret;

	w = kzalloc(sizeof(*w), GFP_KERNEL);
	if (!w)
		return -ENOMEM;
	w->root = root;
	w->span = span;
	w->file = file;
	ret = bdsnap_call_in_worker(bdsnap_store_stack_fn, w);
	if (ret && !w->msg[0])
		snprintf(w->msg, sizeof(w->msg), "a device stack that could not be checked");
	if (ret && ret != -ENOMEM) {
		if (name)
			pr_err("%s: %s: the store root %s is on %s (%pe)\n",
			       name, what, bdsnap_store_root, w->msg, ERR_PTR(ret));
		else
			pr_err("the store root %s is on %s (%pe)\n",
			       bdsnap_store_root, w->msg, ERR_PTR(ret));
	}
	kfree(w);
	return ret;
}
