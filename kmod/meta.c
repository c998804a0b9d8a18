// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: a session's meta.json (docs/FORMAT.md), and what deactivation
 * adds to the last one: the writes the device received outside any mount
 * after it closed, so the restorer can refuse the chain they break.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/err.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "core.h"

struct bdsnap_json {
	char *buf;
	size_t size, len;
};

static void json_raw(struct bdsnap_json *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (j->len < j->size)
		j->len += vsnprintf(j->buf + j->len, j->size - j->len, fmt, ap);
	va_end(ap);
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static int utf8_seq(const unsigned char *p)
{
	int n, i;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/*
 * A JSON string. Paths are bytes: valid UTF-8 passes through, any other
 * byte >= 0x80 is written as \u00XX (its Latin-1 reading), so the output is
 * always valid JSON.
 */
static void json_str(struct bdsnap_json *j, const char *str)
{
	const unsigned char *p = (const unsigned char *)str;

	json_raw(j, "\"");
	while (*p) {
		int n;

		if (*p == '"' || *p == '\\') {
			json_raw(j, "\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			json_raw(j, "\\u%04x", *p++);
		} else if (*p < 0x80) {
			json_raw(j, "%c", *p++);
		} else if ((n = utf8_seq(p))) {
			json_raw(j, "%.*s", n, p);
			p += n;
		} else {
			json_raw(j, "\\u%04x", *p++);
		}
	}
	json_raw(j, "\"");
}

/* meta.json exactly as docs/FORMAT.md lists it. Returns its length. */
int bdsnap_meta_render(struct bdsnap_session *s, char *buf, size_t size)
{
	struct bdsnap_json j = { .buf = buf, .size = size };
	char err[96] = "";
	const char *state;
	unsigned long flags;
	u32 st;
	int e;

	spin_lock_irqsave(&s->lock, flags);
	st = s->state;
	e = s->error;
	if (st == BDSNAP_SESSION_FAILED)
		snprintf(err, sizeof(err), "%pe: %s", ERR_PTR(e), s->error_what);
	spin_unlock_irqrestore(&s->lock, flags);
	if (st == BDSNAP_SESSION_FAILED)
		state = "failed";
	else if (s->end_time_ns)
		state = "closed";
	else
		state = "open";

	json_raw(&j, "{\"format\":1,\"id\":");
	json_str(&j, s->id);
	json_raw(&j, ",\"device\":");
	json_str(&j, s->dev->name);
	json_raw(&j, ",\"identity\":");
	json_str(&j, s->identity);
	json_raw(&j, ",\"kind\":\"%s\",\"dev\":\"%u:%u\"",
		 s->kind == BDSNAP_KIND_FILE ? "file" : "block",
		 MAJOR(s->devt), MINOR(s->devt));
	json_raw(&j, ",\"size\":%llu,\"logical_block_size\":%u,\"chunk_size\":%u",
		 s->size, s->lbs, s->chunk_size);
	json_raw(&j, ",\"fs_type\":");
	json_str(&j, s->fs_type);
	json_raw(&j, ",\"seq\":%llu,\"mount_time_ns\":%llu,\"end_time_ns\":%llu",
		 s->seq, s->mount_time_ns, s->end_time_ns);
	json_raw(&j, ",\"began\":\"%s\"",
		 s->at_activation ? "activation" : "mount");
	json_raw(&j, ",\"state\":\"%s\",\"error\":", state);
	json_str(&j, err);
	json_raw(&j, ",\"durability\":\"write-ahead\"");
	json_raw(&j, ",\"records\":%u,\"bytes\":%llu,\"unmounted_writes_before\":%llu",
		 READ_ONCE(s->store.records), READ_ONCE(s->store.map_bytes),
		 s->unmounted_before);
	json_raw(&j, ",\"unmounted_writes_after\":%llu,\"deactivated_ns\":%llu}",
		 s->unmounted_after, s->deactivated_ns);
	return j.len < j.size ? (int)j.len : -ENOSPC;
}

/* A finished session kept as dev->last, with the device reference it holds. */
void bdsnap_last_free(struct bdsnap_session *s)
{
	if (!s)
		return;
	kfree(s->store.dir);
	bdsnap_dev_put(s->dev);
	kfree(s);
}

struct bdsnap_rewrite {
	struct bdsnap_session *s;
	const struct path *root;
};

static int bdsnap_rewrite_meta_fn(void *arg)
{
	struct bdsnap_rewrite *w = arg;

	return bdsnap_store_rewrite_meta(w->s, w->root);
}

/*
 * A device was deactivated (its retire returned @last, reg_mutex dropped):
 * the writes it received after its last session closed go into that
 * session's meta.json, with the time, so that the restorer can refuse the
 * chain they break. Then @last is freed.
 */
void bdsnap_record_deactivation(struct bdsnap_session *last,
				const struct path *root)
{
	struct bdsnap_rewrite w = { .s = last, .root = root };
	int ret;

	if (!last)
		return;
	/* Off the list: after a grace period no bio still counts on it. */
	synchronize_rcu();
	last->unmounted_after = atomic64_read(&last->dev->unmounted_writes);
	last->deactivated_ns = ktime_get_real_ns();
	ret = root->dentry ? bdsnap_call_in_worker(bdsnap_rewrite_meta_fn, &w) :
			     -ENOENT;
	if (ret)
		pr_warn("%s: cannot record the deactivation in session %s: %pe%s\n",
			last->dev->name, last->id, ERR_PTR(ret),
			last->unmounted_after ? "; the writes since it closed are not recorded" : "");
	else if (last->unmounted_after)
		pr_info("%s: %llu write(s) outside any mount since session %s closed; recorded in it\n",
			last->dev->name, last->unmounted_after, last->id);
	bdsnap_last_free(last);
}

