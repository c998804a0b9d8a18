// SPDX-License-Identifier: GPL-2.0
/*
 * 6.15..6.18: vfs_mkdir() returns the dentry to use (or an ERR_PTR) instead
 * of an int, and takes no delegation argument. The id mapping is NULL so
 * that its type does not matter here.
 */
#include <linux/fs.h>

struct dentry *bdsnap_probe(struct inode *dir, struct dentry *d);
struct dentry *bdsnap_probe(struct inode *dir, struct dentry *d)
{
	return vfs_mkdir(NULL, dir, d, 0700);
}
