// SPDX-License-Identifier: GPL-2.0
/* 6.19+: vfs_rmdir() takes a struct delegated_inode * as its last argument. */
#include <linux/fs.h>

int bdsnap_probe(struct inode *dir, struct dentry *d);
int bdsnap_probe(struct inode *dir, struct dentry *d)
{
	return vfs_rmdir(NULL, dir, d, NULL);
}
