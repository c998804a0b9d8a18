// SPDX-License-Identifier: GPL-2.0
/*
 * 6.19+/7.x: a name in a directory is locked for creating or removing with
 * start_creating_noperm()/start_removing_noperm() and released with
 * end_creating()/end_removing(), instead of the parent's inode lock and a
 * lookup.
 */
#include <linux/dcache.h>
#include <linux/err.h>
#include <linux/namei.h>
#include <linux/string.h>

int bdsnap_probe(struct dentry *parent, const char *name);
int bdsnap_probe(struct dentry *parent, const char *name)
{
	struct qstr q = QSTR_INIT(name, strlen(name));
	struct dentry *d = start_creating_noperm(parent, &q);

	if (IS_ERR(d))
		return PTR_ERR(d);
	end_creating(d);
	d = start_removing_noperm(parent, &q);
	if (IS_ERR(d))
		return PTR_ERR(d);
	end_removing(d);
	return 0;
}
