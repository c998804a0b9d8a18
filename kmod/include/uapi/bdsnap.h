/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * bdsnap: copy-on-write snapshot sessions for block devices.
 *
 * The user-space ABI of the module, defined here once. ffi/uapi.ts mirrors it
 * and tests/unit/uapi_layout_test.ts keeps the two in agreement by compiling
 * a probe against this header.
 *
 * Two ways in, one implementation behind them:
 *   - system calls activate_snapshot(dev_name, passwd) and
 *     deactivate_snapshot(dev_name, passwd); their numbers are published in
 *     /sys/module/bdsnap/parameters/nr_activate and .../nr_deactivate;
 *   - the misc device /dev/bdsnap (root only) with the ioctls below.
 *
 * All structures have fixed sizes, naturally aligned 64-bit fields and
 * explicit padding, so 32- and 64-bit callers see the same layout. User
 * pointers travel as __u64.
 */
#ifndef _UAPI_LINUX_BDSNAP_H
#define _UAPI_LINUX_BDSNAP_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define BDSNAP_ABI_VERSION	1

#define BDSNAP_CTL_NAME		"bdsnap"	/* /dev/bdsnap */

/* Longest password accepted, including the terminating NUL. */
#define BDSNAP_PASSWD_MAX	256
/*
 * Longest password-hash string, including the terminating NUL. The hash
 * string is "pbkdf2-sha256$<iterations>$<salt hex>$<derived key hex>" with
 * a 16..64 byte salt and a 32 byte derived key (PBKDF2-HMAC-SHA256).
 */
#define BDSNAP_HASH_MAX		256
/* Size of the name fields in reports; longer names are truncated. */
#define BDSNAP_NAME_LEN		1024
#define BDSNAP_SESSION_ID_LEN	256
#define BDSNAP_STORE_ROOT_LEN	256
/* Size of a device's stable identity, including the terminating NUL. */
#define BDSNAP_IDENTITY_LEN	512

/* ACTIVATE, DEACTIVATE: the same two arguments as the system calls. */
struct bdsnap_target {
	__u64 path;		/* user pointer: NUL-terminated path */
	__u64 passwd;		/* user pointer: NUL-terminated password */
};

/* VERSION: what the loaded module is and how to reach it. */
struct bdsnap_version {
	__u32 major;
	__u32 minor;
	__u32 patch;
	__u32 abi;		/* BDSNAP_ABI_VERSION */
	__s32 nr_activate;	/* system call numbers in use */
	__s32 nr_deactivate;
	__u32 flags;		/* BDSNAP_VERSION_F_* */
	__u32 chunk_size;	/* minimum copy-on-write unit, bytes */
	char store_root[BDSNAP_STORE_ROOT_LEN];
};

#define BDSNAP_VERSION_F_PASSWORD_SET	(1U << 0)

/* STATUS: module-wide counters. */
struct bdsnap_status {
	__u32 devices;		/* activated devices */
	__u32 sessions;		/* open sessions */
	__u64 inflight_bytes;	/* pre-image bytes held in memory now */
	__u64 inflight_peak;	/* high-water mark of inflight_bytes */
	__u64 inflight_limit;	/* cap; writers wait above it */
	__u64 chunks_saved;	/* since load, all sessions */
	__u64 bytes_saved;
	__u64 sessions_failed;
	__u64 auth_failures;
};

/* Session state, as in meta.json "state". */
enum bdsnap_session_state {
	BDSNAP_SESSION_NONE	= 0,	/* activated, not mounted */
	BDSNAP_SESSION_OPEN	= 1,
	BDSNAP_SESSION_FAILED	= 2,	/* copy-on-write stopped; origin I/O goes on */
};

enum bdsnap_device_kind {
	BDSNAP_KIND_BLOCK	= 1,	/* activated by block device path */
	BDSNAP_KIND_FILE	= 2,	/* activated by loop backing-file path */
};

/* The device was deactivated while mounted; its session ends at unmount. */
#define BDSNAP_DEV_F_DEACTIVATING	(1U << 0)

/* One activated device and its current session, if any. */
struct bdsnap_device_info {
	char name[BDSNAP_NAME_LEN];		/* path given at activation */
	char session_id[BDSNAP_SESSION_ID_LEN];	/* store directory name, or "" */
	__u32 kind;		/* enum bdsnap_device_kind */
	__u32 state;		/* enum bdsnap_session_state */
	__u32 major;		/* device now covered; 0:0 for a file */
	__u32 minor;		/*  with no loop device attached */
	__s32 error;		/* negative errno that failed the session, or 0 */
	__u32 flags;		/* BDSNAP_DEV_F_* */
	__u64 sessions;		/* sessions started since activation */
	__u64 chunks_saved;	/* current session */
	__u64 bytes_saved;	/* current session, written to the store */
	__u64 pending_bytes;	/* current session, still in memory */
	__u64 unmounted_writes;	/* write bios seen outside any session */
};

/* LIST: copy up to capacity entries; count returns how many exist. */
struct bdsnap_list {
	__u64 devices;		/* user pointer: struct bdsnap_device_info[] */
	__u32 capacity;		/* entries the array holds */
	__u32 count;		/* out: activated devices in total */
};

/*
 * SET_PASSWORD: install or replace the password hash. old_passwd may be 0
 * only while no hash is set; afterwards it must be the current password.
 */
struct bdsnap_passwd_change {
	__u64 old_passwd;	/* user pointer: NUL-terminated, or 0 */
	__u64 new_hash;		/* user pointer: NUL-terminated hash string */
};

/*
 * SET_IDENTITY: the stable identity of an activated device, as user space
 * read it (a disk's WWN or serial, a partition's GPT UUID, an image file's
 * device, inode and path; docs/FORMAT.md), written into the meta.json of
 * every session that opens after it. Printable ASCII, 1 to
 * BDSNAP_IDENTITY_LEN - 1 bytes. Set once per activation: the same value
 * again succeeds, another one is EBUSY. Checked like ACTIVATE.
 */
struct bdsnap_identity {
	__u64 path;		/* user pointer: the device as activated */
	__u64 passwd;		/* user pointer: NUL-terminated password */
	__u64 identity;		/* user pointer: NUL-terminated identity */
};

/*
 * PROTECT_MOUNT: a session, from now on, for a filesystem on an activated
 * device that was mounted before the activation, so its mount opened none.
 * The filesystem is frozen while the session opens, so the session's
 * pre-state is consistent; its meta.json says "began": "activation".
 * mount_fd: an open file or directory on that filesystem. Checked like
 * ACTIVATE; then EOPNOTSUPP: it cannot be frozen; EXDEV: not on that
 * device; EBUSY: the device has a session already, or (before Linux 6.6)
 * the filesystem is frozen already.
 */
struct bdsnap_protect_mount {
	__u64 path;		/* user pointer: the device as activated */
	__u64 passwd;		/* user pointer: NUL-terminated password */
	__s32 mount_fd;
	__u32 flags;		/* 0 */
};

#define BDSNAP_IOC_MAGIC	0xB5

#define BDSNAP_IOC_ACTIVATE	_IOW(BDSNAP_IOC_MAGIC, 1, struct bdsnap_target)
#define BDSNAP_IOC_DEACTIVATE	_IOW(BDSNAP_IOC_MAGIC, 2, struct bdsnap_target)
#define BDSNAP_IOC_VERSION	_IOR(BDSNAP_IOC_MAGIC, 3, struct bdsnap_version)
#define BDSNAP_IOC_STATUS	_IOR(BDSNAP_IOC_MAGIC, 4, struct bdsnap_status)
#define BDSNAP_IOC_LIST		_IOWR(BDSNAP_IOC_MAGIC, 5, struct bdsnap_list)
#define BDSNAP_IOC_SET_PASSWORD	_IOW(BDSNAP_IOC_MAGIC, 6, struct bdsnap_passwd_change)
#define BDSNAP_IOC_SET_IDENTITY	_IOW(BDSNAP_IOC_MAGIC, 7, struct bdsnap_identity)
#define BDSNAP_IOC_PROTECT_MOUNT _IOW(BDSNAP_IOC_MAGIC, 8, struct bdsnap_protect_mount)

/*
 * The on-disk store format (blocks.map). docs/FORMAT.md is the prose; these
 * are the definitions. All integers are little-endian.
 */
#define BDSNAP_MAP_MAGIC	"BDSNAPMP"	/* 8 bytes, no NUL */
#define BDSNAP_MAP_VERSION	1

/*
 * Header flags. WRITE_AHEAD: every origin write that overwrote a saved
 * chunk reached the device only after the chunk's record and data were
 * durable, so the map is exact up to its last valid record even after a
 * crash. FAILED: the session failed (fail_errno); writes after that point
 * were not saved. The header is rewritten in place to set FAILED, which
 * needs no new blocks on a filesystem that overwrites in place.
 */
#define BDSNAP_MAP_F_WRITE_AHEAD	(1U << 0)
#define BDSNAP_MAP_F_FAILED		(1U << 1)

struct bdsnap_map_header {
	__u8  magic[8];		/* BDSNAP_MAP_MAGIC */
	__le32 version;		/* BDSNAP_MAP_VERSION */
	__le32 header_size;	/* sizeof(struct bdsnap_map_header) = 64 */
	__le32 record_size;	/* sizeof(struct bdsnap_map_record) = 32 */
	__le32 chunk_size;	/* copy-on-write unit, bytes */
	__le64 device_size;	/* bytes */
	__le32 logical_block_size;
	__le32 flags;		/* BDSNAP_MAP_F_* */
	__le32 fail_errno;	/* FAILED: the positive errno, else 0 */
	__le32 fail_records;	/* FAILED: records durable at the failure */
	__u8  reserved[12];	/* 0 */
	__le32 header_crc;	/* crc32c of bytes 0..59 */
};

struct bdsnap_map_record {
	__le64 dev_offset;	/* byte offset on the device, chunk aligned */
	__le64 dat_offset;	/* byte offset in blocks.dat */
	__le32 length;		/* bytes, a multiple of chunk_size */
	__le32 data_crc;	/* crc32c of the length bytes in blocks.dat */
	__le32 seq;		/* record index, from 0 */
	__le32 record_crc;	/* crc32c of bytes 0..27 of this record */
};

#endif /* _UAPI_LINUX_BDSNAP_H */
