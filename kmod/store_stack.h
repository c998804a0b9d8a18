/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bdsnap: where the store may live (store_stack.c), and the loop and sysfs
 * helpers of loopdev.c it uses.
 */
#ifndef _BDSNAP_STORE_STACK_H
#define _BDSNAP_STORE_STACK_H

#include <linux/types.h>

struct path;
struct bdsnap_span;
struct bdsnap_file_id;

/*
 * 0 if the store root (held by the caller) may hold sessions of the activated device (span for a
 * block device, file for an image file; exactly one is set). -EXDEV if the
 * device, or the filesystem holding the image, is anywhere in the stack the
 * store is written through; -ENOTBLK if the store's filesystem has no block
 * device; -ELOOP if the stack is too deep or too wide to check. Logs one
 * pr_err line on refusal, prefixed "<name>: <what>: " when name is set.
 * Sleeps; runs the walk in a kworker.
 */
int bdsnap_store_stack_check(const char *name, const char *what,
			     const struct path *root,
			     const struct bdsnap_span *span,
			     const struct bdsnap_file_id *file);

/*
 * The block devices a sysfs directory of device links lists (slaves/,
 * btrfs's devices/): 0 with *nr = 0 if it does not exist, -E2BIG if it
 * lists more than max. From a kworker.
 */
int bdsnap_sysfs_devs(const char *dir, dev_t *devs, unsigned int max,
		      unsigned int *nr);

/* loopdev.c */
int bdsnap_read_sysfs(const char *path, char *buf, size_t size);
int bdsnap_loop_backing_path(dev_t loop, struct path *p, u64 *diskseq);

#endif /* _BDSNAP_STORE_STACK_H */
