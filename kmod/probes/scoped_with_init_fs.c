// SPDX-License-Identifier: GPL-2.0
/*
 * 7.x: kernel threads no longer share PID 1's fs_struct (their root is the
 * kernel's own, not the one init switched to); scoped_with_init_fs() makes
 * a kthread resolve paths against init's root and cwd for one block.
 */
#include <linux/fs_struct.h>
#include <linux/sched.h>

int bdsnap_probe(void);
int bdsnap_probe(void)
{
	scoped_with_init_fs() {
		return current->fs != NULL;
	}
	return 0;
}
