// SPDX-License-Identifier: GPL-2.0
/* 6.3+: VFS object operations take the mount's struct mnt_idmap. */
#include <linux/fs.h>
#include <linux/mount.h>

int bdsnap_probe(struct vfsmount *mnt, struct inode *dir, struct dentry *d);
int bdsnap_probe(struct vfsmount *mnt, struct inode *dir, struct dentry *d)
{
	return vfs_mkdir(mnt_idmap(mnt), dir, d, 0700);
}
