// SPDX-License-Identifier: GPL-2.0
/*
 * 6.16+: lookup_one_len(name, base, len) is lookup_noperm(struct qstr *, base)
 * (no permission check; the hash is computed by the call).
 */
#include <linux/dcache.h>
#include <linux/namei.h>
#include <linux/string.h>

struct dentry *bdsnap_probe(const char *name, struct dentry *base);
struct dentry *bdsnap_probe(const char *name, struct dentry *base)
{
	struct qstr q = QSTR_INIT(name, strlen(name));

	return lookup_noperm(&q, base);
}
