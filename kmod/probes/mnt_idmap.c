// SPDX-License-Identifier: GPL-2.0
/*
 * 6.3+: VFS object operations take the mount's struct mnt_idmap (before:
 * struct user_namespace, mnt_user_ns()). vfs_unlink() is the one of them
 * whose other arguments accept the same call on every kernel we build for
 * (its last one, a delegation out-argument, is NULL here).
 */
#include <linux/fs.h>
#include <linux/mount.h>

int bdsnap_probe(struct vfsmount *mnt, struct inode *dir, struct dentry *d);
int bdsnap_probe(struct vfsmount *mnt, struct inode *dir, struct dentry *d)
{
	return vfs_unlink(mnt_idmap(mnt), dir, d, NULL);
}
