// SPDX-License-Identifier: GPL-2.0
/*
 * 6.19+: vfs_mkdir() returns a dentry and takes a struct delegated_inode *
 * as its last argument.
 */
#include <linux/fs.h>

struct dentry *bdsnap_probe(struct inode *dir, struct dentry *d);
struct dentry *bdsnap_probe(struct inode *dir, struct dentry *d)
{
	return vfs_mkdir(NULL, dir, d, 0700, NULL);
}
