// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the set of activated devices, and the data plane's init/exit.
 *
 * A block device path is activated by device number, resolved when
 * activate is called (the node may be renamed or re-created later). We also
 * remember where the device lies on its whole disk, so that writes which
 * reach an activated partition through the whole-disk node (or any other
 * partition node that overlaps it) are recognised too.
 *
 * A regular file path is activated by identity (filesystem device + inode
 * number); the loop devices it backs are found by loopdev.c.
 *
 * Each activated device holds a module reference, so "rmmod" is refused
 * while any device is activated or any session (which holds its device) is
 * open.
 *
 * The bio hook reads the list under RCU. A cheap filter (a small bitmap of
 * disks that may matter) lets the ftrace callback decide, without touching
 * the list, whether a write is worth redirecting at all.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/namei.h>
#include <linux/mount.h>
#include <linux/major.h>
#include <linux/hash.h>
#include <linux/bitmap.h>
#include <linux/string.h>
#include <linux/ctype.h>
#include <linux/workqueue.h>

#include "core.h"
#include "compat.h"
#include "store_stack.h"

char *bdsnap_store_root = "/snapshot";
module_param_named(store_root, bdsnap_store_root, charp, 0444);
MODULE_PARM_DESC(store_root, "Directory that holds the session stores (absolute path)");

unsigned int bdsnap_inflight_limit_mb = 64;
module_param_named(inflight_limit_mb, bdsnap_inflight_limit_mb, uint, 0444);
MODULE_PARM_DESC(inflight_limit_mb, "Cap on pre-images held in memory, MiB; writers wait above it");

struct workqueue_struct *bdsnap_cow_wq;
struct workqueue_struct *bdsnap_store_wq;
struct workqueue_struct *bdsnap_ctl_wq;

DEFINE_MUTEX(bdsnap_reg_mutex);
DECLARE_WAIT_QUEUE_HEAD(bdsnap_reg_wq);
LIST_HEAD(bdsnap_devs);

atomic_t bdsnap_nr_devs, bdsnap_nr_file_devs, bdsnap_nr_sessions;
atomic64_t bdsnap_inflight_bytes, bdsnap_inflight_peak;
atomic64_t bdsnap_total_chunks, bdsnap_total_bytes, bdsnap_total_failed;

/* ---- the disk filter used by the ftrace callback ---- */

#define FILTER_SHIFT	10
static unsigned long bdsnap_filter_bits[BITS_TO_LONGS(1U << FILTER_SHIFT)];

/*
 * May a write to this disk concern us? False positives only cost a trip
 * through the wrapper; a false negative would lose a write, so bits are
 * only ever cleared by a rebuild that keeps every still-needed bit set.
 */
bool notrace bdsnap_disk_filter(const struct gendisk *disk)
{
	if (!atomic_read(&bdsnap_nr_devs))
		return false;
	if (disk->major == LOOP_MAJOR && atomic_read(&bdsnap_nr_file_devs))
		return true;
	return test_bit(hash_32(bdsnap_disk_devt(disk), FILTER_SHIFT),
			bdsnap_filter_bits);
}

/* reg_mutex held. */
void bdsnap_filter_add(dev_t disk)
{
	lockdep_assert_held(&bdsnap_reg_mutex);
	set_bit(hash_32(disk, FILTER_SHIFT), bdsnap_filter_bits);
}

/*
 * reg_mutex held. Word-sized stores: a bit that is set before and after
 * stays set throughout, so a concurrent reader never misses a live disk.
 */
void bdsnap_filter_rebuild(void)
{
	unsigned long fresh[ARRAY_SIZE(bdsnap_filter_bits)] = { 0 };
	struct bdsnap_dev *dev;
	unsigned int i;

	lockdep_assert_held(&bdsnap_reg_mutex);
	list_for_each_entry(dev, &bdsnap_devs, node) {
		struct bdsnap_session *s;

		if (dev->kind == BDSNAP_KIND_BLOCK)
			__set_bit(hash_32(dev->span.disk, FILTER_SHIFT), fresh);
		s = rcu_dereference_protected(dev->session,
				lockdep_is_held(&bdsnap_reg_mutex));
		if (s)
			__set_bit(hash_32(s->span.disk, FILTER_SHIFT), fresh);
	}
	for (i = 0; i < ARRAY_SIZE(fresh); i++)
		WRITE_ONCE(bdsnap_filter_bits[i], fresh[i]);
}

/* ---- helpers ---- */

struct bdsnap_call {
	struct work_struct work;
	int (*fn)(void *arg);
	void *arg;
	int ret;
};

static void bdsnap_call_fn(struct work_struct *work)
{
	struct bdsnap_call *c = container_of(work, struct bdsnap_call, work);

	/* 7.x: kernel threads no longer share init's root; paths are init's. */
	bdsnap_with_init_fs()
		c->ret = c->fn(c->arg);
}

/*
 * Run fn in a kworker and wait for it. Paths are then resolved from init's
 * root and mount namespace, and files are created with kernel credentials
 * (owned by root), whatever task asked. Sleeps.
 */
int bdsnap_call_in_worker(int (*fn)(void *), void *arg)
{
	struct bdsnap_call c = { .fn = fn, .arg = arg };

	INIT_WORK_ONSTACK(&c.work, bdsnap_call_fn);
	queue_work(bdsnap_ctl_wq, &c.work);
	flush_work(&c.work);
	destroy_work_on_stack(&c.work);
	return c.ret;
}

/* docs/FORMAT.md: the activation path as one safe path component. */
void bdsnap_sanitize_name(const char *path, char *out, size_t size)
{
	size_t n = 0;

	if (*path == '/')
		path++;
	for (; *path && n + 1 < size && n < 128; path++) {
		char c = *path;

		if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
			c = '_';
		out[n++] = c;
	}
	out[n] = '\0';
}

/*
 * Where devt lies on its disk. -EMEDIUMTYPE for a zoned device: a zone
 * reset or zone append cannot be copied on write, so it is never activated.
 */
static int bdsnap_span_of(dev_t devt, struct bdsnap_span *span)
{
	struct bdsnap_bdev b;
	bool zoned;
	int ret;

	ret = bdsnap_bdev_open_ro(devt, &b);
	if (ret)
		return ret;
	zoned = bdev_is_zoned(b.bdev);
	span->disk = bdsnap_disk_devt(b.bdev->bd_disk);
	span->start = b.bdev->bd_start_sect;
	span->nr = bdev_nr_sectors(b.bdev);
	bdsnap_bdev_close(&b);
	return zoned ? -EMEDIUMTYPE : 0;
}

/* ---- does the store live on this device? ---- */

/*
 * Before a session (session.c): 0, or -EXDEV/-ENOTBLK/-ELOOP when the store
 * root may not hold sessions of this device (store_stack.c), logged there.
 */
int bdsnap_store_conflict(const struct path *root, const struct bdsnap_span *span,
			  const struct bdsnap_file_id *file)
{
	return bdsnap_store_stack_check(NULL, NULL, root, span, file);
}

static int bdsnap_root_open_fn(void *root)
{
	return bdsnap_root_open(root, true);
}

static int bdsnap_root_check_fn(void *unused)
{
	struct path root;
	int ret = bdsnap_root_open(&root, false);

	if (!ret)
		path_put(&root);
	return ret == -ENOENT ? 0 : ret;	/* created at activation */
}

/* ---- device objects ---- */

void bdsnap_dev_put(struct bdsnap_dev *dev)
{
	if (refcount_dec_and_test(&dev->ref)) {
		kfree_rcu(dev, rcu);
		module_put(THIS_MODULE);
	}
}

/*
 * Take the device off the list; reg_mutex held, no session left. Its last
 * session and store root go to *r, for bdsnap_retired_finish() once the
 * mutex is dropped (the device may be gone by then).
 */
void bdsnap_dev_retire(struct bdsnap_dev *dev, struct bdsnap_retired *r)
{
	lockdep_assert_held(&bdsnap_reg_mutex);
	if (!dev->listed)
		return;
	r->last = dev->last;
	dev->last = NULL;
	r->root = dev->root;
	dev->root = (struct path){};
	list_del_rcu(&dev->node);
	dev->listed = false;
	atomic_dec(&bdsnap_nr_devs);
	if (dev->kind == BDSNAP_KIND_FILE)
		atomic_dec(&bdsnap_nr_file_devs);
	bdsnap_filter_rebuild();
	bdsnap_loop_forget(dev);
	pr_info("%s: deactivated\n", dev->name);
	bdsnap_dev_put(dev);
}

/* The rest of a retirement, without reg_mutex (it may sleep on the store). */
void bdsnap_retired_finish(struct bdsnap_retired *r)
{
	bdsnap_record_deactivation(r->last, &r->root);
	if (r->root.dentry)
		path_put(&r->root);
}

static struct bdsnap_dev *bdsnap_dev_find(u32 kind, dev_t devt,
					  const struct bdsnap_file_id *file,
					  const char *name)
{
	struct bdsnap_dev *dev;

	lockdep_assert_held(&bdsnap_reg_mutex);
	list_for_each_entry(dev, &bdsnap_devs, node) {
		if (kind == BDSNAP_KIND_BLOCK && dev->kind == kind &&
		    dev->devt == devt)
			return dev;
		if (kind == BDSNAP_KIND_FILE && dev->kind == kind &&
		    dev->file.sdev == file->sdev && dev->file.ino == file->ino)
			return dev;
		if (!kind && name && !strcmp(dev->name, name))
			return dev;
	}
	return NULL;
}

static int bdsnap_path_errno(int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
	case -ELOOP:
		return -ENOENT;
	case -ENAMETOOLONG:
	case -ENOMEM:
		return err;
	default:
		return -EINVAL;
	}
}

/* What a path names: a block device (devt) or a regular file (file). */
static int bdsnap_resolve(const char *path, u32 *kind, dev_t *devt,
			  struct bdsnap_file_id *file)
{
	struct inode *inode;
	struct path p;
	int ret;

	ret = kern_path(path, LOOKUP_FOLLOW, &p);
	if (ret)
		return bdsnap_path_errno(ret);
	inode = d_backing_inode(p.dentry);
	ret = 0;
	if (S_ISBLK(inode->i_mode)) {
		*kind = BDSNAP_KIND_BLOCK;
		*devt = inode->i_rdev;
	} else if (S_ISREG(inode->i_mode)) {
		*kind = BDSNAP_KIND_FILE;
		file->sdev = inode->i_sb->s_dev;
		file->ino = inode->i_ino;
	} else {
		ret = -ENOTBLK;
	}
	path_put(&p);
	return ret;
}

int bdsnap_registry_activate(const char *path)
{
	struct bdsnap_file_id file = { 0 };
	struct path root;
	struct bdsnap_span span = { 0 };
	struct bdsnap_dev *dev, *old;
	dev_t devt = 0;
	u32 kind;
	int ret;

	if (!path || !*path)
		return -EINVAL;
	ret = bdsnap_resolve(path, &kind, &devt, &file);
	if (ret)
		return ret;

	/* The store root, checked, held by the device from now on. */
	ret = bdsnap_call_in_worker(bdsnap_root_open_fn, &root);
	if (ret) {
		if (ret != -ELOOP && ret != -ENOTDIR && ret != -EACCES)
			pr_err("%s: not activated: cannot open or create the store root %s: %pe\n",
			       path, bdsnap_store_root, ERR_PTR(ret));
		return ret;
	}
	if (kind == BDSNAP_KIND_BLOCK) {
		ret = bdsnap_span_of(devt, &span);
		if (ret == -EMEDIUMTYPE)
			pr_err("%s: not activated: a zoned block device (zone resets and appends cannot be copied on write)\n",
			       path);
		if (ret && ret != -ENOMEM && ret != -EMEDIUMTYPE)
			ret = -ENOENT;
		if (!ret)
			ret = bdsnap_store_stack_check(path, "not activated", &root,
						       &span, NULL);
	} else {
		ret = bdsnap_store_stack_check(path, "not activated", &root,
					       NULL, &file);
	}
	if (ret)
		goto err_root;

	ret = -ENOMEM;
	dev = kzalloc(struct_size(dev, name, strlen(path) + 1), GFP_KERNEL);
	if (!dev)
		goto err_root;
	dev->root = root;
	strcpy(dev->name, path);
	refcount_set(&dev->ref, 1);
	dev->kind = kind;
	dev->devt = devt;
	dev->span = span;
	dev->file = file;
	dev->state = BDSNAP_DEV_IDLE;
	atomic64_set(&dev->unmounted_writes, 0);

	mutex_lock(&bdsnap_reg_mutex);
	old = bdsnap_dev_find(kind, devt, &file, NULL);
	if (old) {
		if (old->deactivating) {
			old->deactivating = false;
			pr_info("%s: activated again before its unmount\n",
				old->name);
			ret = 0;
		} else {
			ret = -EALREADY;
		}
		mutex_unlock(&bdsnap_reg_mutex);
		kfree(dev);
		goto err_root;
	}
	if (!try_module_get(THIS_MODULE)) {
		mutex_unlock(&bdsnap_reg_mutex);
		kfree(dev);
		ret = -EINVAL;
		goto err_root;
	}
	dev->listed = true;
	list_add_tail_rcu(&dev->node, &bdsnap_devs);
	if (kind == BDSNAP_KIND_FILE)
		atomic_inc(&bdsnap_nr_file_devs);
	else
		bdsnap_filter_add(span.disk);
	/* Publish the filter bits before the callback may look at them. */
	smp_mb__before_atomic();
	atomic_inc(&bdsnap_nr_devs);
	mutex_unlock(&bdsnap_reg_mutex);

	if (kind == BDSNAP_KIND_FILE) {
		bdsnap_loop_scan(dev);
		pr_info("%s: activated (image file)\n", path);
	} else {
		pr_info("%s: activated (%u:%u)\n", path, MAJOR(devt), MINOR(devt));
	}
	return 0;

err_root:
	path_put(&root);
	return ret;
}

int bdsnap_registry_deactivate(const char *path)
{
	struct bdsnap_retired r = { 0 };
	struct bdsnap_file_id file = { 0 };
	struct bdsnap_dev *dev;
	dev_t devt = 0;
	u32 kind = 0;
	int ret;

	if (!path || !*path)
		return -EINVAL;
	ret = bdsnap_resolve(path, &kind, &devt, &file);
	if (ret == -ENOTBLK)
		return ret;

	mutex_lock(&bdsnap_reg_mutex);
	dev = ret ? NULL : bdsnap_dev_find(kind, devt, &file, NULL);
	/* A node or image that has gone away: the name given at activation. */
	if (!dev)
		dev = bdsnap_dev_find(0, 0, NULL, path);
	if (!dev || dev->deactivating) {
		mutex_unlock(&bdsnap_reg_mutex);
		/* A path that does not resolve is ENOENT; a known one, inactive. */
		return !dev && ret ? ret : -EALREADY;
	}
	if (dev->state != BDSNAP_DEV_IDLE) {
		dev->deactivating = true;
		pr_info("%s: deactivated while mounted; the running session continues until unmount\n",
			dev->name);
	} else {
		bdsnap_dev_retire(dev, &r);
	}
	mutex_unlock(&bdsnap_reg_mutex);
	bdsnap_retired_finish(&r);
	return 0;
}

/*
 * The identity is written once and then only read, without a lock, by
 * session open: a second call may only repeat it.
 */
int bdsnap_registry_set_identity(const char *path, const char *identity)
{
	struct bdsnap_file_id file = { 0 };
	struct bdsnap_dev *dev;
	dev_t devt = 0;
	u32 kind = 0;
	int ret;

	ret = bdsnap_resolve(path, &kind, &devt, &file);
	if (ret)
		return ret;
	mutex_lock(&bdsnap_reg_mutex);
	dev = bdsnap_dev_find(kind, devt, &file, NULL);
	if (!dev || dev->deactivating) {
		ret = -EALREADY;
	} else if (dev->identity_set) {
		ret = strcmp(dev->identity, identity) ? -EBUSY : 0;
	} else {
		strscpy(dev->identity, identity, sizeof(dev->identity));
		smp_store_release(&dev->identity_set, true);
		pr_info("%s: identity %s\n", dev->name, dev->identity);
	}
	mutex_unlock(&bdsnap_reg_mutex);
	return ret;
}

/* The activated device path names, with a reference; ERR_PTR if none. */
struct bdsnap_dev *bdsnap_dev_get_by_path(const char *path)
{
	struct bdsnap_file_id file = { 0 };
	struct bdsnap_dev *dev;
	dev_t devt = 0;
	u32 kind = 0;
	int ret;

	ret = bdsnap_resolve(path, &kind, &devt, &file);
	if (ret)
		return ERR_PTR(ret);
	mutex_lock(&bdsnap_reg_mutex);
	dev = bdsnap_dev_find(kind, devt, &file, NULL);
	if (dev && !dev->deactivating)
		refcount_inc(&dev->ref);
	else
		dev = ERR_PTR(-EALREADY);
	mutex_unlock(&bdsnap_reg_mutex);
	return dev;
}

static void bdsnap_fill_info(struct bdsnap_device_info *info,
			     struct bdsnap_dev *dev)
{
	struct bdsnap_session *s;

	memset(info, 0, sizeof(*info));
	strscpy(info->name, dev->name, sizeof(info->name));
	info->kind = dev->kind;
	info->flags = dev->deactivating ? BDSNAP_DEV_F_DEACTIVATING : 0;
	info->sessions = dev->nr_sessions;
	info->unmounted_writes = atomic64_read(&dev->unmounted_writes);
	if (dev->kind == BDSNAP_KIND_BLOCK) {
		info->major = MAJOR(dev->devt);
		info->minor = MINOR(dev->devt);
	} else {
		info->major = MAJOR(READ_ONCE(dev->bound));
		info->minor = MINOR(READ_ONCE(dev->bound));
	}
	info->state = BDSNAP_SESSION_NONE;

	/* A session is freed only after an RCU grace period past unpublishing. */
	rcu_read_lock();
	s = rcu_dereference(dev->session);
	if (s) {
		strscpy(info->session_id, s->id, sizeof(info->session_id));
		info->state = READ_ONCE(s->state);
		info->error = READ_ONCE(s->error);
		info->major = MAJOR(s->devt);
		info->minor = MINOR(s->devt);
		info->chunks_saved = atomic64_read(&s->chunks_saved);
		info->bytes_saved = atomic64_read(&s->bytes_saved);
		info->pending_bytes = READ_ONCE(s->pending_bytes);
	}
	rcu_read_unlock();
}

int bdsnap_registry_list(struct bdsnap_device_info *out, u32 cap, u32 *total)
{
	struct bdsnap_dev *dev;
	u32 n = 0;

	mutex_lock(&bdsnap_reg_mutex);
	list_for_each_entry(dev, &bdsnap_devs, node) {
		if (out && n < cap)
			bdsnap_fill_info(&out[n], dev);
		n++;
	}
	mutex_unlock(&bdsnap_reg_mutex);
	*total = n;
	return 0;
}

void bdsnap_core_status(struct bdsnap_status *st)
{
	st->devices = atomic_read(&bdsnap_nr_devs);
	st->sessions = atomic_read(&bdsnap_nr_sessions);
	st->inflight_bytes = atomic64_read(&bdsnap_inflight_bytes);
	st->inflight_peak = atomic64_read(&bdsnap_inflight_peak);
	st->inflight_limit = (u64)bdsnap_inflight_limit_mb << 20;
	st->chunks_saved = atomic64_read(&bdsnap_total_chunks);
	st->bytes_saved = atomic64_read(&bdsnap_total_bytes);
	st->sessions_failed = atomic64_read(&bdsnap_total_failed);
}

/* ---- init / exit ---- */

static int __init bdsnap_crc_selftest(void)
{
	static const char check[] = "123456789";

	if (bdsnap_crc32c(check, sizeof(check) - 1) != 0xE3069283) {
		pr_err("CRC-32C self-test failed\n");
		return -EINVAL;
	}
	return 0;
}

int __init bdsnap_core_init(void)
{
	int ret;

	if (!bdsnap_store_root || bdsnap_store_root[0] != '/' ||
	    strlen(bdsnap_store_root) >= BDSNAP_STORE_ROOT_LEN) {
		pr_err("store_root must be an absolute path shorter than %d bytes\n",
		       BDSNAP_STORE_ROOT_LEN);
		return -EINVAL;
	}
	if (!bdsnap_inflight_limit_mb || bdsnap_inflight_limit_mb > (1U << 20)) {
		pr_err("inflight_limit_mb must be 1..%u\n", 1U << 20);
		return -EINVAL;
	}
	ret = bdsnap_crc_selftest();
	if (ret)
		return ret;

	ret = -ENOMEM;
	/* In the writeback path: both need a rescuer to make progress. */
	bdsnap_cow_wq = alloc_workqueue("bdsnap_cow",
					WQ_MEM_RECLAIM | WQ_HIGHPRI | BDSNAP_WQ_PERCPU, 0);
	bdsnap_store_wq = alloc_workqueue("bdsnap_store", WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	bdsnap_ctl_wq = alloc_workqueue("bdsnap_ctl", WQ_UNBOUND, 0);
	if (!bdsnap_cow_wq || !bdsnap_store_wq || !bdsnap_ctl_wq)
		goto err_wq;

	/* A store root that exists must pass the checks activation makes. */
	ret = bdsnap_call_in_worker(bdsnap_root_check_fn, NULL);
	if (ret)
		goto err_wq;
	ret = bdsnap_cow_init();
	if (ret)
		goto err_wq;
	ret = bdsnap_loopdev_init();
	if (ret)
		goto err_cow;
	/* Last: from here on bios and mounts reach us. */
	ret = bdsnap_hooks_init();
	if (ret)
		goto err_loop;
	return 0;

err_loop:
	bdsnap_loopdev_exit();
err_cow:
	bdsnap_cow_exit();
err_wq:
	if (bdsnap_ctl_wq)
		destroy_workqueue(bdsnap_ctl_wq);
	if (bdsnap_store_wq)
		destroy_workqueue(bdsnap_store_wq);
	if (bdsnap_cow_wq)
		destroy_workqueue(bdsnap_cow_wq);
	return ret;
}

void bdsnap_core_exit(void)
{
	/* No hook runs after this returns; then nothing can queue work. */
	bdsnap_hooks_exit();
	/* Our module references make this impossible; say so if it happens. */
	WARN_ON(!list_empty(&bdsnap_devs));
	bdsnap_loopdev_exit();
	bdsnap_cow_exit();
	destroy_workqueue(bdsnap_ctl_wq);
	destroy_workqueue(bdsnap_store_wq);
	destroy_workqueue(bdsnap_cow_wq);
	/* kfree_rcu() of the last devices. */
	rcu_barrier();
}
