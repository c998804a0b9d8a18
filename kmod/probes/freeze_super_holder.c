// SPDX-License-Identifier: GPL-2.0
/*
 * freeze_super(sb, who) (6.6 to 6.15): the kernel's freeze and user
 * space's (FIFREEZE) nest instead of refusing each other.
 */
#include <linux/fs.h>

int bdsnap_probe(struct super_block *sb);
int bdsnap_probe(struct super_block *sb)
{
	return freeze_super(sb, FREEZE_HOLDER_KERNEL) ?:
	       thaw_super(sb, FREEZE_HOLDER_KERNEL);
}
