// SPDX-License-Identifier: GPL-2.0
/*
 * freeze_super(sb, who, owner) (6.16+): a freeze names its holder and, when
 * exclusive, its owner; thaw_super() takes the same.
 */
#include <linux/fs.h>

int bdsnap_probe(struct super_block *sb);
int bdsnap_probe(struct super_block *sb)
{
	return freeze_super(sb, FREEZE_HOLDER_KERNEL, NULL) ?:
	       thaw_super(sb, FREEZE_HOLDER_KERNEL, NULL);
}
