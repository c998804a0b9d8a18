// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: a session for a filesystem mounted before its device was
 * activated (BDSNAP_IOC_PROTECT_MOUNT).
 *
 * Its mount went by before bdsnap could see it, so its pre-state is taken
 * the way a live snapshot is: create the session's store, freeze the
 * filesystem (all it has written is on the device, its journal is clean,
 * and nothing more can be written), publish the session, thaw. The store is
 * made before the freeze, so a store that hangs holds no writer. Writes from the thaw on are the
 * session's. The super_block joins the session's set as a mount's would, so
 * its unmount closes the session. The caller's file on the filesystem holds
 * the mount, and with it an active reference on the super_block, for the
 * whole call.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/mount.h>
#include <linux/blkdev.h>
#include <linux/err.h>

#include "bdsnap.h"
#include "core.h"
#include "compat.h"

/* Whether freezing sb gives a consistent image: the FIFREEZE rules. */
static int bdsnap_can_freeze(struct super_block *sb)
{
	if (!(sb->s_type->fs_flags & FS_REQUIRES_DEV) || !sb->s_bdev)
		return -ENOTBLK;
	/* Read-only: freeze_super() has nothing to do, a remount rw is ours. */
	if (!sb_rdonly(sb) && (!sb->s_op->freeze_fs || sb->s_op->freeze_super))
		return -EOPNOTSUPP;
	return 0;
}

int bdsnap_protect_mount(const char *path, int mount_fd)
{
	struct bdsnap_session *s;
	struct bdsnap_dev *dev, *on;
	struct super_block *sb;
	struct file *f;
	dev_t devt, target;
	int ret, thawed;

	f = fget(mount_fd);
	if (!f)
		return -EBADF;
	sb = f->f_path.mnt->mnt_sb;
	ret = bdsnap_can_freeze(sb);
	if (ret)
		goto out_file;
	devt = sb->s_bdev->bd_dev;

	dev = bdsnap_dev_get_by_path(path);
	if (IS_ERR(dev)) {
		ret = PTR_ERR(dev);
		goto out_file;
	}
	on = bdsnap_dev_for_mount(devt, &target);
	bdsnap_dev_put(dev);
	if (on != dev) {
		ret = -EXDEV;	/* the filesystem is not on that device */
		goto out_on;
	}

	/* Consumes the reference on "on"; leaves sb frozen if it opened one. */
	s = bdsnap_open_begin(on, devt, target, sb->s_type->name, sb);
	on = NULL;
	if (IS_ERR_OR_NULL(s)) {
		ret = s ? PTR_ERR(s) : -EIO;	/* NULL: why is in the log */
		goto out_file;
	}
	pr_info("%s: session %s began at activation (%s on %u:%u, frozen meanwhile)\n",
		s->dev->name, s->id, sb->s_type->name, MAJOR(devt), MINOR(devt));
	bdsnap_open_end(s, sb);
	thawed = bdsnap_thaw_super(sb);
	if (thawed)
		pr_err("%s: thawing %u:%u failed: %pe\n", path, MAJOR(devt),
		       MINOR(devt), ERR_PTR(thawed));
out_on:
	if (on)
		bdsnap_dev_put(on);
out_file:
	fput(f);
	return ret;
}
