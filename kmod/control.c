// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the control plane's one implementation of activate/deactivate,
 * shared by the system calls (syscall.c) and the ioctls, and the misc device
 * /dev/bdsnap that carries the ioctls of include/uapi/bdsnap.h.
 *
 * Order of checks for activate/deactivate; each refusal changes nothing:
 *   1. CAP_SYS_ADMIN, else EPERM;
 *   2. the path: EFAULT (bad or NULL pointer), ENAMETOOLONG (no NUL within
 *      PATH_MAX bytes), ENOENT (empty);
 *   3. the password: EFAULT, EINVAL (no NUL within BDSNAP_PASSWD_MAX bytes);
 *   4. the password check: EPERM;
 *   5. the registry: its own errors (ENOENT, ENOTBLK, EALREADY, EXDEV, ...).
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/capability.h>
#include <linux/err.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <linux/limits.h>
#include <linux/sizes.h>

#include "bdsnap.h"

/* Minimum copy-on-write unit reported by VERSION (the spec's 4 KiB). */
#define BDSNAP_CHUNK_MIN	SZ_4K
/* Most entries one LIST call copies (about 5 MiB of kernel buffer). */
#define BDSNAP_LIST_MAX		4096U

/*
 * Copy a NUL-terminated user string into dst (size bytes). Returns its
 * length, -EFAULT for a bad pointer, or too_long if there is no NUL within
 * size bytes.
 */
static long bdsnap_copy_ustr(char *dst, const char __user *src, long size,
			     long too_long)
{
	long n;

	if (!src)
		return -EFAULT;
	n = strncpy_from_user(dst, src, size);
	if (n < 0)
		return -EFAULT;
	if (n >= size)
		return too_long;
	return n;
}

static char *bdsnap_get_passwd(const char __user *upasswd, long *err)
{
	char *pw;
	long n;

	pw = kmalloc(BDSNAP_PASSWD_MAX, GFP_KERNEL);
	if (!pw) {
		*err = -ENOMEM;
		return NULL;
	}
	n = bdsnap_copy_ustr(pw, upasswd, BDSNAP_PASSWD_MAX, -EINVAL);
	if (n < 0) {
		memzero_explicit(pw, BDSNAP_PASSWD_MAX);
		kfree(pw);
		*err = n;
		return NULL;
	}
	return pw;
}

static void bdsnap_put_passwd(char *pw)
{
	if (!pw)
		return;
	memzero_explicit(pw, BDSNAP_PASSWD_MAX);
	kfree(pw);
}

/*
 * The device path of a request, copied in, once the password is checked:
 * what every request on one device begins with. __putname() it.
 */
static char *bdsnap_ctl_begin(const char __user *upath,
			      const char __user *upasswd)
{
	char *path, *pw;
	long ret;

	path = __getname();
	if (!path)
		return ERR_PTR(-ENOMEM);
	ret = bdsnap_copy_ustr(path, upath, PATH_MAX, -ENAMETOOLONG);
	if (ret == 0)
		ret = -ENOENT;
	if (ret < 0)
		goto err;
	pw = bdsnap_get_passwd(upasswd, &ret);
	if (!pw)
		goto err;
	ret = bdsnap_auth_check(pw);
	bdsnap_put_passwd(pw);
	if (ret)
		goto err;
	return path;
err:
	__putname(path);
	return ERR_PTR(ret);
}

static long bdsnap_ctl_target(const char __user *upath,
			      const char __user *upasswd, bool activate)
{
	char *path;
	long ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	path = bdsnap_ctl_begin(upath, upasswd);
	if (IS_ERR(path))
		return PTR_ERR(path);
	ret = activate ? bdsnap_registry_activate(path) :
			 bdsnap_registry_deactivate(path);
	__putname(path);
	return ret;
}

long bdsnap_ctl_activate(const char __user *path, const char __user *passwd)
{
	return bdsnap_ctl_target(path, passwd, true);
}

long bdsnap_ctl_deactivate(const char __user *path, const char __user *passwd)
{
	return bdsnap_ctl_target(path, passwd, false);
}

static long bdsnap_ioc_target(void __user *argp, bool activate)
{
	struct bdsnap_target t;

	if (copy_from_user(&t, argp, sizeof(t)))
		return -EFAULT;
	return bdsnap_ctl_target(u64_to_user_ptr(t.path),
				 u64_to_user_ptr(t.passwd), activate);
}

/* Printable ASCII only: it goes into meta.json and the kernel log as is. */
static bool bdsnap_identity_ok(const char *id)
{
	for (; *id; id++)
		if (*id < 0x20 || *id > 0x7e)
			return false;
	return true;
}

static long bdsnap_ioc_set_identity(void __user *argp)
{
	struct bdsnap_identity t;
	char *path, *id;
	long ret;

	if (copy_from_user(&t, argp, sizeof(t)))
		return -EFAULT;
	path = bdsnap_ctl_begin(u64_to_user_ptr(t.path), u64_to_user_ptr(t.passwd));
	if (IS_ERR(path))
		return PTR_ERR(path);
	id = kmalloc(BDSNAP_IDENTITY_LEN, GFP_KERNEL);
	ret = -ENOMEM;
	if (!id)
		goto out_path;
	ret = bdsnap_copy_ustr(id, u64_to_user_ptr(t.identity),
			       BDSNAP_IDENTITY_LEN, -EINVAL);
	if (ret == 0 || (ret > 0 && !bdsnap_identity_ok(id)))
		ret = -EINVAL;
	if (ret >= 0)
		ret = bdsnap_registry_set_identity(path, id);
	kfree(id);
out_path:
	__putname(path);
	return ret;
}

static long bdsnap_ioc_protect_mount(void __user *argp)
{
	struct bdsnap_protect_mount t;
	char *path;
	long ret;

	if (copy_from_user(&t, argp, sizeof(t)))
		return -EFAULT;
	if (t.flags)
		return -EINVAL;
	path = bdsnap_ctl_begin(u64_to_user_ptr(t.path), u64_to_user_ptr(t.passwd));
	if (IS_ERR(path))
		return PTR_ERR(path);
	ret = bdsnap_protect_mount(path, t.mount_fd);
	__putname(path);
	return ret;
}

static long bdsnap_ioc_version(void __user *argp)
{
	struct bdsnap_version v;

	memset(&v, 0, sizeof(v));
	v.major = BDSNAP_VERSION_MAJOR;
	v.minor = BDSNAP_VERSION_MINOR;
	v.patch = BDSNAP_VERSION_PATCH;
	v.abi = BDSNAP_ABI_VERSION;
	v.nr_activate = bdsnap_nr_activate;
	v.nr_deactivate = bdsnap_nr_deactivate;
	if (bdsnap_auth_is_set())
		v.flags |= BDSNAP_VERSION_F_PASSWORD_SET;
	v.chunk_size = BDSNAP_CHUNK_MIN;
	kernel_param_lock(THIS_MODULE);
	if (bdsnap_store_root)
		strscpy(v.store_root, bdsnap_store_root, sizeof(v.store_root));
	kernel_param_unlock(THIS_MODULE);

	if (copy_to_user(argp, &v, sizeof(v)))
		return -EFAULT;
	return 0;
}

static long bdsnap_ioc_status(void __user *argp)
{
	struct bdsnap_status st;

	memset(&st, 0, sizeof(st));
	bdsnap_core_status(&st);
	st.auth_failures = bdsnap_auth_failures();

	if (copy_to_user(argp, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

static long bdsnap_ioc_list(struct bdsnap_list __user *argp)
{
	struct bdsnap_device_info *buf = NULL;
	struct bdsnap_list l;
	u32 cap, total = 0, n;
	long ret;

	if (copy_from_user(&l, argp, sizeof(l)))
		return -EFAULT;

	cap = min(l.capacity, BDSNAP_LIST_MAX);
	if (cap) {
		buf = kvcalloc(cap, sizeof(*buf), GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}

	ret = bdsnap_registry_list(buf, cap, &total);
	if (ret < 0)
		goto out;

	n = min(cap, total);
	if (n && copy_to_user(u64_to_user_ptr(l.devices), buf,
			      (size_t)n * sizeof(*buf))) {
		ret = -EFAULT;
		goto out;
	}
	ret = put_user(total, &argp->count) ? -EFAULT : 0;
out:
	kvfree(buf);
	return ret;
}

static long bdsnap_ioc_set_password(void __user *argp)
{
	struct bdsnap_passwd_change c;
	char *hash, *old = NULL;
	long ret;

	if (copy_from_user(&c, argp, sizeof(c)))
		return -EFAULT;

	hash = kmalloc(BDSNAP_HASH_MAX, GFP_KERNEL);
	if (!hash)
		return -ENOMEM;
	ret = bdsnap_copy_ustr(hash, u64_to_user_ptr(c.new_hash),
			       BDSNAP_HASH_MAX, -EINVAL);
	if (ret < 0)
		goto out;

	if (c.old_passwd) {
		old = bdsnap_get_passwd(u64_to_user_ptr(c.old_passwd), &ret);
		if (!old)
			goto out;
	}

	ret = bdsnap_auth_set(old, hash);
	bdsnap_put_passwd(old);
out:
	memzero_explicit(hash, BDSNAP_HASH_MAX);
	kfree(hash);
	return ret;
}

static long bdsnap_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	/* Everything here needs it: even STATUS and LIST reveal device names. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case BDSNAP_IOC_ACTIVATE:
		return bdsnap_ioc_target(argp, true);
	case BDSNAP_IOC_DEACTIVATE:
		return bdsnap_ioc_target(argp, false);
	case BDSNAP_IOC_VERSION:
		return bdsnap_ioc_version(argp);
	case BDSNAP_IOC_STATUS:
		return bdsnap_ioc_status(argp);
	case BDSNAP_IOC_LIST:
		return bdsnap_ioc_list(argp);
	case BDSNAP_IOC_SET_PASSWORD:
		return bdsnap_ioc_set_password(argp);
	case BDSNAP_IOC_SET_IDENTITY:
		return bdsnap_ioc_set_identity(argp);
	case BDSNAP_IOC_PROTECT_MOUNT:
		return bdsnap_ioc_protect_mount(argp);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations bdsnap_ctl_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.unlocked_ioctl	= bdsnap_ioctl,
	/* All structures are 64-bit clean; only the pointer argument differs. */
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice bdsnap_ctl_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= BDSNAP_CTL_NAME,
	.fops	= &bdsnap_ctl_fops,
	.mode	= 0600,
};

int bdsnap_control_init(void)
{
	int ret;

	ret = misc_register(&bdsnap_ctl_dev);
	if (ret)
		pr_err("cannot register /dev/%s: error %d\n", BDSNAP_CTL_NAME, ret);
	return ret;
}

void bdsnap_control_exit(void)
{
	misc_deregister(&bdsnap_ctl_dev);
}
