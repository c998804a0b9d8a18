// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the few VFS operations the store needs, in one place because
 * their kernel interfaces change between releases (see compat.h).
 *
 * The store root is resolved once per activation (bdsnap_root_open()):
 * without following any symlink on the way (LOOKUP_NO_SYMLINKS), and only
 * if it is a directory owned by root that group and others cannot write. Everything
 * below it is then created, opened and removed relative to held directory
 * references, one name at a time, so nobody can swap a directory for a
 * symlink between two steps. Only the root itself, when missing, is created
 * through its path (0700).
 *
 * Called from kworkers only: kernel credentials, init's mount namespace.
 * The root's path is resolved against init's root (bdsnap_with_init_fs():
 * on 7.x a kworker's own root is the kernel's rootfs, not the root init
 * switched to).
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/namei.h>
#include <linux/mount.h>
#include <linux/string.h>
#include <linux/uidgid.h>

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

/* Create the missing store root itself, 0700. */
static int bdsnap_mkdir_path(const char *path, umode_t mode)
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

/* Why the store root p may not hold sessions, or 0. */
static int bdsnap_root_refused(const struct path *p, const char **why)
{
	struct inode *inode = d_inode(p->dentry);

	if (d_is_symlink(p->dentry)) {
		*why = "is a symbolic link (give its target instead)";
		return -ELOOP;
	}
	if (!d_is_dir(p->dentry)) {
		*why = "is not a directory";
		return -ENOTDIR;
	}
	if (!uid_eq(inode->i_uid, GLOBAL_ROOT_UID)) {
		*why = "is not owned by root";
		return -EACCES;
	}
	if (inode->i_mode & (S_IWGRP | S_IWOTH)) {
		*why = "is writable by group or others";
		return -EACCES;
	}
	return 0;
}

/*
 * The store root, checked, into *root (path_put() it), created when
 * missing and @create. -ENOENT if missing and not @create; -ELOOP,
 * -ENOTDIR or -EACCES (logged) if refused.
 */
int bdsnap_root_open(struct path *root, bool create)
{
	const char *why = NULL;
	int ret;

	/* No symlink anywhere on the way: a parent could be swapped for one. */
	bdsnap_with_init_fs()
		ret = kern_path(bdsnap_store_root, LOOKUP_NO_SYMLINKS, root);
	if (ret == -ENOENT && create) {
		ret = bdsnap_mkdir_path(bdsnap_store_root, 0700);
		if (ret && ret != -EEXIST)
			return ret;
		bdsnap_with_init_fs()
			ret = kern_path(bdsnap_store_root, LOOKUP_NO_SYMLINKS, root);
	}
	if (ret == -ELOOP || ret == -ENOTDIR)
		pr_err("the store root %s %s; give a path without symbolic links to a directory\n",
		       bdsnap_store_root, ret == -ELOOP ? "has a symbolic link in its path" :
		       "has a component that is not a directory");
	if (ret)
		return ret;
	ret = bdsnap_root_refused(root, &why);
	if (ret) {
		pr_err("the store root %s %s; it must be a directory owned by root, not writable by group or others\n",
		       bdsnap_store_root, why);
		path_put(root);
	}
	return ret;
}

/* Make the directory name in dir (a held path); *out holds it. */
int bdsnap_mkdir_at(const struct path *dir, const char *name, umode_t mode,
		    struct path *out)
{
	struct path parent = *dir;
	struct dentry *d;
	int ret;

	ret = mnt_want_write(dir->mnt);
	if (ret)
		return ret;
	d = bdsnap_start_dirop(dir->dentry, name, true);
	ret = PTR_ERR_OR_ZERO(d);
	if (!ret) {
		ret = bdsnap_vfs_mkdir(&parent, &d, mode);
		if (!ret) {
			out->mnt = mntget(dir->mnt);
			out->dentry = dget(d);
		}
		bdsnap_end_dirop(dir->dentry, d, true);
	}
	mnt_drop_write(dir->mnt);
	return ret;
}

/* Remove name (a file, or an empty directory) from dir, a held path. */
int bdsnap_remove_at(const struct path *dir, const char *name, bool is_dir)
{
	struct inode *di = d_inode(dir->dentry);
	struct dentry *d;
	int ret;

	ret = mnt_want_write(dir->mnt);
	if (ret)
		return ret;
	d = bdsnap_start_dirop(dir->dentry, name, false);
	ret = PTR_ERR_OR_ZERO(d);
	if (!ret) {
		ret = is_dir ? bdsnap_vfs_rmdir(dir->mnt, di, d) :
			       bdsnap_vfs_unlink(dir->mnt, di, d);
		bdsnap_end_dirop(dir->dentry, d, false);
	}
	mnt_drop_write(dir->mnt);
	return ret;
}

void bdsnap_fsync_at(const struct path *dir)
{
	struct file *f = file_open_root(dir, ".", O_RDONLY | O_DIRECTORY, 0);

	if (!IS_ERR(f)) {
		vfs_fsync(f, 0);
		fput(f);
	}
}

/* A new file name in dir (a held path), 0600; never an existing one. */
struct file *bdsnap_create_at(const struct path *dir, const char *name)
{
	return file_open_root(dir, name,
			      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_LARGEFILE,
			      0600);
}

/* An existing regular file rel below dir, for writing; not a symlink. */
struct file *bdsnap_open_at(const struct path *dir, const char *rel)
{
	return file_open_root(dir, rel, O_WRONLY | O_NOFOLLOW | O_LARGEFILE, 0);
}
