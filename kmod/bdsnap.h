/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bdsnap: interfaces between the module's parts.
 *
 *   main.c      module init/exit, ordering of the parts below
 *   control.c   /dev/bdsnap misc device and its ioctls
 *   syscall.c   activate_snapshot/deactivate_snapshot (x86-64 specific)
 *   auth.c      password hash, PBKDF2-HMAC-SHA256, failure rate limit
 *   registry.c  the set of activated devices
 *   hook.c      ftrace redirection of submit_bio_noacct, vfs_get_tree,
 *               deactivate_locked_super
 *   session.c   a mount's copy-on-write session
 *   store.c     blocks.dat / blocks.map / meta.json writer
 *   compat.h    kernel-version differences, driven by compile probes
 */
#ifndef _BDSNAP_H
#define _BDSNAP_H

#include <linux/types.h>
#include <linux/compiler.h>
#include "include/uapi/bdsnap.h"

#define BDSNAP_VERSION_MAJOR	0
#define BDSNAP_VERSION_MINOR	1
#define BDSNAP_VERSION_PATCH	0

/* ---- control plane: auth.c ---- */
int bdsnap_auth_init(void);
void bdsnap_auth_exit(void);
/* 0 if passwd (kernel copy, NUL-terminated) matches; -EPERM otherwise. Rate limited. */
int bdsnap_auth_check(const char *passwd);
/* Install a new hash (kernel copy); old_passwd may be NULL only when none is set. */
int bdsnap_auth_set(const char *old_passwd, const char *new_hash);
bool bdsnap_auth_is_set(void);
u64 bdsnap_auth_failures(void);
/* PBKDF2-HMAC-SHA256 (RFC 8018), isolated for known-answer tests. May sleep. */
int bdsnap_pbkdf2_hmac_sha256(const u8 *pw, size_t pw_len, const u8 *salt,
			      size_t salt_len, u32 iterations, u8 *dk, size_t dk_len);

/*
 * ---- control plane: the one implementation behind syscalls and ioctls ----
 * Checks privilege, copies and validates the user strings, authenticates,
 * then calls the registry. Returns 0 or a negative errno (see uapi header).
 */
long bdsnap_ctl_activate(const char __user *path, const char __user *passwd);
long bdsnap_ctl_deactivate(const char __user *path, const char __user *passwd);

int bdsnap_control_init(void);		/* control.c: misc device */
void bdsnap_control_exit(void);
int bdsnap_syscall_init(void);		/* syscall.c */
void bdsnap_syscall_exit(void);
extern int bdsnap_nr_activate, bdsnap_nr_deactivate;

/* ---- data plane: registry.c / session.c / hook.c / store.c ---- */
int bdsnap_core_init(void);		/* hooks, workqueues, caches */
void bdsnap_core_exit(void);

/*
 * Activate/deactivate by path (kernel copy). Errors: -ENOENT, -ENOTBLK,
 * -EALREADY, -EXDEV (store on that device), -EINVAL, -ENOMEM.
 */
int bdsnap_registry_activate(const char *path);
int bdsnap_registry_deactivate(const char *path);
/* Record an activated device's stable identity: -ENOENT, -EALREADY (not
 * activated), -EBUSY (another identity already set). */
int bdsnap_registry_set_identity(const char *path, const char *identity);

/* live.c: a session, from now on, for a filesystem mounted before activation */
int bdsnap_protect_mount(const char *path, int mount_fd);
/* Fill up to cap entries (kernel buffer); *total gets the number activated. */
int bdsnap_registry_list(struct bdsnap_device_info *out, u32 cap, u32 *total);
void bdsnap_core_status(struct bdsnap_status *st);

extern char *bdsnap_store_root;		/* module parameter store_root */

#endif /* _BDSNAP_H */
