// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the few VFS operations the store needs (create a directory, a
 * file, remove them, write fully, sync a directory), in one place because
 * their kernel interfaces change between releases (see compat.h).
 * Called from kworkers only: kernel credentials, init's mount namespace.
 * Paths are absolute and resolved against init's root
 * (bdsnap_with_init_fs(): on 7.x a kworker's own root is the kernel's
 * rootfs, not the root init switched to).
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/namei.h>
#include <linux/mount.h>
#include <linux/string.h>

#include "core.h"
#include "compat.h"

int bdsnap_write_all(struct file *f, const void *buf, size_t len,
			    loff_t *pos)
{
	while (len) {
		ssize_t n = kernel_write(f, buf, len, pos);

		if (n < 0)
			return n;
		if (!n)
			return -EIO;
		buf += n;
		len -= n;
	}
	return 0;
}

int bdsnap_mkdir(const char *path, umode_t mode)
{
	struct path parent;
	struct dentry *d;
	int ret;

	bdsnap_with_init_fs() {
		d = bdsnap_start_creating_path(path, &parent, LOOKUP_DIRECTORY);
		if (IS_ERR(d))
			return PTR_ERR(d);
		ret = bdsnap_vfs_mkdir(&parent, &d, mode);
		bdsnap_end_creating_path(&parent, d);
	}
	return ret;
}

/* Remove dir/name (a file, or an empty directory). */
int bdsnap_remove(const char *dir, const char *name, bool is_dir)
{
	struct path parent;
	struct dentry *d;
	struct inode *di;
	int ret;

	bdsnap_with_init_fs()
		ret = kern_path(dir, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &parent);
	if (ret)
		return ret;
	ret = mnt_want_write(parent.mnt);
	if (ret)
		goto out;
	di = d_inode(parent.dentry);
	inode_lock_nested(di, I_MUTEX_PARENT);
	d = bdsnap_lookup_locked(name, parent.dentry);
	if (IS_ERR(d)) {
		ret = PTR_ERR(d);
	} else {
		if (d_really_is_negative(d))
			ret = -ENOENT;
		else if (is_dir)
			ret = bdsnap_vfs_rmdir(parent.mnt, di, d);
		else
			ret = bdsnap_vfs_unlink(parent.mnt, di, d);
		dput(d);
	}
	inode_unlock(di);
	mnt_drop_write(parent.mnt);
out:
	path_put(&parent);
	return ret;
}

void bdsnap_fsync_dir(const char *path)
{
	struct file *f;

	bdsnap_with_init_fs()
		f = filp_open(path, O_RDONLY | O_DIRECTORY, 0);
	if (!IS_ERR(f)) {
		vfs_fsync(f, 0);
		fput(f);
	}
}

static struct file *bdsnap_open_in(const char *dir, const char *name, int flags)
{
	struct file *f;
	char *path;

	path = kasprintf(GFP_KERNEL, "%s/%s", dir, name);
	if (!path)
		return ERR_PTR(-ENOMEM);
	bdsnap_with_init_fs()
		f = filp_open(path, flags | O_LARGEFILE, 0600);
	kfree(path);
	return f;
}

/* A new file dir/name, 0600; never an existing one. */
struct file *bdsnap_create(const char *dir, const char *name)
{
	return bdsnap_open_in(dir, name, O_WRONLY | O_CREAT | O_EXCL);
}

/* An existing regular file dir/name for writing; never through a symlink. */
struct file *bdsnap_open_existing(const char *dir, const char *name)
{
	return bdsnap_open_in(dir, name, O_WRONLY | O_NOFOLLOW);
}
