// SPDX-License-Identifier: GPL-2.0
/*
 * 6.18+: kern_path_create()/done_path_create() are called
 * start_creating_path()/end_creating_path().
 */
#include <linux/err.h>
#include <linux/fcntl.h>
#include <linux/namei.h>
#include <linux/path.h>

int bdsnap_probe(const char *name);
int bdsnap_probe(const char *name)
{
	struct path parent;
	struct dentry *d = start_creating_path(AT_FDCWD, name, &parent,
					       LOOKUP_DIRECTORY);

	if (IS_ERR(d))
		return PTR_ERR(d);
	end_creating_path(&parent, d);
	return 0;
}
