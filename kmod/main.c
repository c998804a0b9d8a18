// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: module init and exit.
 *
 * Parts come up in dependency order and go down in reverse: the password
 * store first (it runs its PBKDF2 self-test), then the core (hooks,
 * registry), and only then the two ways in, the control device and the
 * system calls, so no caller can reach a part that is not ready.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/module.h>
#include <linux/init.h>
#include <linux/stringify.h>

#include "bdsnap.h"

static int __init bdsnap_init(void)
{
	int ret;

	ret = bdsnap_auth_init();
	if (ret)
		return ret;
	ret = bdsnap_core_init();
	if (ret)
		goto err_auth;
	ret = bdsnap_control_init();
	if (ret)
		goto err_core;
	ret = bdsnap_syscall_init();
	if (ret)
		goto err_control;

	pr_info("version %d.%d.%d loaded%s\n", BDSNAP_VERSION_MAJOR,
		BDSNAP_VERSION_MINOR, BDSNAP_VERSION_PATCH,
		bdsnap_auth_is_set() ? "" : "; no password hash set yet");
	return 0;

err_control:
	bdsnap_control_exit();
err_core:
	bdsnap_core_exit();
err_auth:
	bdsnap_auth_exit();
	return ret;
}

static void __exit bdsnap_exit(void)
{
	bdsnap_syscall_exit();
	bdsnap_control_exit();
	bdsnap_core_exit();
	bdsnap_auth_exit();
	pr_info("unloaded\n");
}

module_init(bdsnap_init);
module_exit(bdsnap_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Copy-on-write snapshot sessions for block devices");
MODULE_VERSION(__stringify(BDSNAP_VERSION_MAJOR) "."
	       __stringify(BDSNAP_VERSION_MINOR) "."
	       __stringify(BDSNAP_VERSION_PATCH));
