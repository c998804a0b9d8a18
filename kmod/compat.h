/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bdsnap: the one place for kernel-version differences.
 *
 * How it works
 * ------------
 * Every API whose shape differs between the kernels we build for has a
 * compile probe, probes/<name>.c: a few lines that use the API exactly as
 * the module would. Before the module is compiled, scripts/probe.sh (run by
 * the Makefile, or by the Kbuild rule when kbuild is invoked directly)
 * compiles all probes in ONE kbuild pass against the target kernel (make -k,
 * -Werror) and writes compat_probes.h with
 *
 *	#define BDSNAP_HAVE_<NAME> 1
 *
 * for each probe that compiled. This header turns those defines into small
 * helpers. The .c files call only the helpers: no LINUX_VERSION_CODE tests
 * anywhere. A new difference means a new probe plus a helper here; the
 * control plane may add probes too.
 *
 * Probes and what they select
 * ---------------------------
 * ftrace_regs_set_instruction_pointer (6.7+), ftrace_instruction_pointer_set
 *	(5.11..6.6): how an ftrace callback redirects the traced function.
 *	Both need DYNAMIC_FTRACE_WITH_ARGS; without it the generic headers
 *	define them as no-ops, so we then go through the saved pt_regs, which
 *	our ops always request (FTRACE_OPS_FL_SAVE_REGS).
 * bdev_file_open_by_dev (6.9+), blkdev_get_by_dev_fmode (up to 6.4): opening
 *	a block device for reading its geometry.
 * mnt_idmap (6.3+): VFS object operations take struct mnt_idmap, before
 *	that struct user_namespace (mnt_user_ns()).
 * vfs_mkdir_delegated (6.19+), vfs_mkdir_dentry (6.15..6.18): vfs_mkdir()
 *	returns the dentry to go on with (or an ERR_PTR, having released the
 *	one it was given), later also with a delegation argument; before
 *	6.15 it returns an int.
 * vfs_rmdir_delegated (6.19+): vfs_rmdir() takes a delegation argument.
 *	(vfs_unlink()'s one changed type, but NULL fits both.)
 * start_creating_path (6.18+): kern_path_create()/done_path_create()
 *	renamed start_creating_path()/end_creating_path().
 * lookup_noperm (6.16+): lookup_one_len(name, base, len) became
 *	lookup_noperm(struct qstr *, base).
 * start_creating_noperm (6.19+): a name is locked for creating or removing
 *	with start_creating_noperm()/start_removing_noperm() and released with
 *	end_creating()/end_removing(), not by the parent's inode lock.
 * is_endbr_word (7.x, IBT kernels): is_endbr() takes a pointer and is not
 *	exported; the check of an instruction word is __is_endbr(u32).
 * scoped_with_init_fs (7.x): kernel threads have an fs_struct of their
 *	own, rooted in the kernel's rootfs, no longer PID 1's: a kworker that
 *	resolves a path as init sees it must say so (bdsnap_with_init_fs()).
 * wq_percpu (6.17+, and Debian's 6.12): WQ_PERCPU; 7.2+ warns about an
 *	alloc_workqueue() with neither WQ_PERCPU nor WQ_UNBOUND.
 * crc32c_le (up to 6.13): the built-in CRC-32C is __crc32c_le(); later
 *	kernels call it crc32c() in <linux/crc32.h>. We use the built-in one
 *	so that the module needs no libcrc32c.
 * sanity: always compiles; proves the probe setup works.
 */
#ifndef _BDSNAP_COMPAT_H
#define _BDSNAP_COMPAT_H

#include <linux/blkdev.h>
#include <linux/crc32.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/ftrace.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/ptrace.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include <asm/ibt.h>

#include "compat_probes.h"

/* ---- ftrace: redirect the traced function, read its first argument ---- */

static __always_inline void bdsnap_ftrace_set_ip(struct ftrace_regs *fregs,
						 unsigned long ip)
{
#if defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS) && \
	defined(BDSNAP_HAVE_FTRACE_REGS_SET_INSTRUCTION_POINTER)
	ftrace_regs_set_instruction_pointer(fregs, ip);
#elif defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS) && \
	defined(BDSNAP_HAVE_FTRACE_INSTRUCTION_POINTER_SET)
	ftrace_instruction_pointer_set(fregs, ip);
#else
	instruction_pointer_set(ftrace_get_regs(fregs), ip);
#endif
}

/* Our ops always ask for FTRACE_OPS_FL_SAVE_REGS, so the regs are there. */
static __always_inline unsigned long
bdsnap_ftrace_arg0(struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);

	return regs ? regs_get_kernel_argument(regs, 0) : 0;
}

/* ---- a short-lived, shared, read-only open of a block device ---- */

struct bdsnap_bdev {
	struct block_device *bdev;
#ifdef BDSNAP_HAVE_BDEV_FILE_OPEN_BY_DEV
	struct file *file;
#endif
};

static inline int bdsnap_bdev_open_ro(dev_t dev, struct bdsnap_bdev *b)
{
#if defined(BDSNAP_HAVE_BDEV_FILE_OPEN_BY_DEV)
	struct file *f = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL, NULL);

	if (IS_ERR(f))
		return PTR_ERR(f);
	b->file = f;
	b->bdev = file_bdev(f);
	return 0;
#elif defined(BDSNAP_HAVE_BLKDEV_GET_BY_DEV_FMODE)
	struct block_device *bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);

	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	b->bdev = bdev;
	return 0;
#else
#error "bdsnap: no known way to open a block device here; add a probe"
#endif
}

static inline void bdsnap_bdev_close(struct bdsnap_bdev *b)
{
#if defined(BDSNAP_HAVE_BDEV_FILE_OPEN_BY_DEV)
	fput(b->file);
#else
	blkdev_put(b->bdev, FMODE_READ);
#endif
	b->bdev = NULL;
}

/* ---- the id mapping argument of vfs_mkdir()/vfs_unlink()/vfs_rmdir() ---- */

#ifdef BDSNAP_HAVE_MNT_IDMAP
#define bdsnap_mnt_idmap(mnt)	mnt_idmap(mnt)
#else
#define bdsnap_mnt_idmap(mnt)	mnt_user_ns(mnt)
#endif

/* ---- path resolution from a kworker: against init's root ---- */

/*
 * Put in front of a block that resolves paths:
 *
 *	bdsnap_with_init_fs() {
 *		...
 *	}
 *
 * On 7.x the block runs with PID 1's root and cwd (scoped_with_init_fs(),
 * restored when the block is left, by return too). Before, kernel threads
 * share init's fs_struct, and it is a plain block.
 */
#ifdef BDSNAP_HAVE_SCOPED_WITH_INIT_FS
#define bdsnap_with_init_fs()	scoped_with_init_fs()
#else
#define bdsnap_with_init_fs()
#endif

/* ---- creating a directory: start, vfs_mkdir, end ---- */

/* Looks up path's parent, locks it, takes write access to its mount. */
static inline struct dentry *bdsnap_start_creating_path(const char *path,
							struct path *parent,
							unsigned int flags)
{
#ifdef BDSNAP_HAVE_START_CREATING_PATH
	return start_creating_path(AT_FDCWD, path, parent, flags);
#else
	return kern_path_create(AT_FDCWD, path, parent, flags);
#endif
}

/*
 * Give it the dentry bdsnap_vfs_mkdir() left in *d (which may be an
 * ERR_PTR since 6.15: both ends of those kernels accept that).
 */
static inline void bdsnap_end_creating_path(struct path *parent,
					    struct dentry *d)
{
#ifdef BDSNAP_HAVE_START_CREATING_PATH
	end_creating_path(parent, d);
#else
	done_path_create(parent, d);
#endif
}

/* 0 or -errno. *d is updated to what bdsnap_end_creating_path() wants. */
static inline int bdsnap_vfs_mkdir(struct path *parent, struct dentry **d,
				   umode_t mode)
{
#if defined(BDSNAP_HAVE_VFS_MKDIR_DELEGATED)
	*d = vfs_mkdir(bdsnap_mnt_idmap(parent->mnt), d_inode(parent->dentry),
		       *d, mode, NULL);
	return PTR_ERR_OR_ZERO(*d);
#elif defined(BDSNAP_HAVE_VFS_MKDIR_DENTRY)
	*d = vfs_mkdir(bdsnap_mnt_idmap(parent->mnt), d_inode(parent->dentry),
		       *d, mode);
	return PTR_ERR_OR_ZERO(*d);
#else
	return vfs_mkdir(bdsnap_mnt_idmap(parent->mnt), d_inode(parent->dentry),
			 *d, mode);
#endif
}

/* ---- a name in a held directory, locked for creating or removing ---- */

/*
 * A negative dentry for name in parent (create), or its positive one
 * (remove), locked for the operation; ERR_PTR(-EEXIST) or (-ENOENT) if it
 * is the other way round. Always end with bdsnap_end_dirop().
 */
static inline struct dentry *bdsnap_start_dirop(struct dentry *parent,
						const char *name, bool create)
{
#ifdef BDSNAP_HAVE_START_CREATING_NOPERM
	struct qstr q = QSTR_INIT(name, strlen(name));

	return create ? start_creating_noperm(parent, &q) :
			start_removing_noperm(parent, &q);
#else
	struct dentry *d;
#ifdef BDSNAP_HAVE_LOOKUP_NOPERM
	struct qstr q = QSTR_INIT(name, strlen(name));
#endif

	inode_lock_nested(d_inode(parent), I_MUTEX_PARENT);
#ifdef BDSNAP_HAVE_LOOKUP_NOPERM
	d = lookup_noperm(&q, parent);
#else
	d = lookup_one_len(name, parent, strlen(name));
#endif
	if (!IS_ERR(d) && create == d_really_is_positive(d)) {
		dput(d);
		d = ERR_PTR(create ? -EEXIST : -ENOENT);
	}
	if (IS_ERR(d))
		inode_unlock(d_inode(parent));
	return d;
#endif
}

/*
 * After bdsnap_start_dirop() succeeded, with the dentry it gave or the one
 * bdsnap_vfs_mkdir() left (which may be an ERR_PTR since 6.15).
 */
static inline void bdsnap_end_dirop(struct dentry *parent, struct dentry *d,
				    bool create)
{
#ifdef BDSNAP_HAVE_START_CREATING_NOPERM
	if (create)
		end_creating(d);
	else
		end_removing(d);
#else
	if (!IS_ERR(d))
		dput(d);
	inode_unlock(d_inode(parent));
#endif
}

static inline int bdsnap_vfs_rmdir(struct vfsmount *mnt, struct inode *dir,
				   struct dentry *d)
{
#ifdef BDSNAP_HAVE_VFS_RMDIR_DELEGATED
	return vfs_rmdir(bdsnap_mnt_idmap(mnt), dir, d, NULL);
#else
	return vfs_rmdir(bdsnap_mnt_idmap(mnt), dir, d);
#endif
}

static inline int bdsnap_vfs_unlink(struct vfsmount *mnt, struct inode *dir,
				    struct dentry *d)
{
	return vfs_unlink(bdsnap_mnt_idmap(mnt), dir, d, NULL);
}

/* ---- x86 IBT: is this instruction word an ENDBR64? ---- */

#ifdef CONFIG_X86_KERNEL_IBT
static inline bool bdsnap_is_endbr(u32 insn)
{
#ifdef BDSNAP_HAVE_IS_ENDBR_WORD
	return __is_endbr(insn);
#else
	return is_endbr(insn);
#endif
}
#endif

/* ---- workqueues: say per-CPU where the kernel knows the flag ---- */

#ifdef BDSNAP_HAVE_WQ_PERCPU
#define BDSNAP_WQ_PERCPU	WQ_PERCPU
#else
#define BDSNAP_WQ_PERCPU	0
#endif

/* ---- CRC-32C, raw update step (no pre/post inversion) ---- */

static inline u32 bdsnap_crc32c_update(u32 crc, const void *p, size_t len)
{
#ifdef BDSNAP_HAVE_CRC32C_LE
	return __crc32c_le(crc, p, len);
#else
	return crc32c(crc, p, len);
#endif
}

/*
 * ---- freezing a mounted filesystem (live.c) ----
 * As the kernel's holder where there are holders, so that a freeze user
 * space holds (fsfreeze) neither blocks ours nor is thawed by it. Before
 * 6.6 a filesystem frozen already is -EBUSY.
 */

static inline int bdsnap_freeze_super(struct super_block *sb)
{
#if defined(BDSNAP_HAVE_FREEZE_SUPER_OWNER)
	return freeze_super(sb, FREEZE_HOLDER_KERNEL, NULL);
#elif defined(BDSNAP_HAVE_FREEZE_SUPER_HOLDER)
	return freeze_super(sb, FREEZE_HOLDER_KERNEL);
#else
	return freeze_super(sb);
#endif
}

static inline int bdsnap_thaw_super(struct super_block *sb)
{
#if defined(BDSNAP_HAVE_FREEZE_SUPER_OWNER)
	return thaw_super(sb, FREEZE_HOLDER_KERNEL, NULL);
#elif defined(BDSNAP_HAVE_FREEZE_SUPER_HOLDER)
	return thaw_super(sb, FREEZE_HOLDER_KERNEL);
#else
	return thaw_super(sb);
#endif
}

#endif /* _BDSNAP_COMPAT_H */
