// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the session store, exactly as docs/FORMAT.md describes it:
 *
 *   <store_root>/<name>_<UTC timestamp>[-N]/   0700, root
 *       blocks.dat   pre-images, appended densely                 0600
 *       blocks.map   64-byte header, then 32-byte records          0600
 *       meta.json    the session, rewritten at close or failure    0600
 *
 * Ordering, so that a crash leaves a store usable up to its last complete
 * record: a record is written to blocks.map only after its data is in
 * blocks.dat and blocks.dat has been fdatasynced; the writes the records
 * protect are released only after blocks.map is fdatasynced too
 * (write-ahead; the header says so with BDSNAP_MAP_F_WRITE_AHEAD).
 *
 * A failure is recorded by rewriting the map header in place with
 * BDSNAP_MAP_F_FAILED: its block exists from the start, so on a filesystem
 * that overwrites in place that needs no new blocks, even on a full store.
 * meta.json is rewritten in place too, padded with spaces to a constant
 * size, for the same reason.
 *
 * Everything is created relative to the store root the device holds since
 * its activation (dev->root) and the session directory the store holds
 * (st->path), never through a path string again (store_fs.c). Files are
 * created from a kworker (kernel credentials, init's namespace); appends
 * and syncs run in the session's store worker, never concurrently.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/namei.h>
#include <linux/mount.h>
#include <linux/highmem.h>
#include <linux/time64.h>
#include <linux/math64.h>
#include <linux/string.h>

#include "core.h"
#include "compat.h"

#define BDSNAP_META_SIZE	4096
#define BDSNAP_META_MAX		16384
/*
 * blocks.map is extended with zeroes this much at a time, so that appending
 * records is an overwrite: its fdatasync then needs no journal commit. A
 * zero record is not valid, so the zeroes read as a torn tail until the
 * close truncates them.
 */
#define BDSNAP_MAP_STEP		(256 << 10)

static_assert(sizeof(struct bdsnap_map_header) == 64);
static_assert(sizeof(struct bdsnap_map_record) == 32);

/* Standard CRC-32C (docs/FORMAT.md): initial ~0, final inversion. */
u32 bdsnap_crc32c(const void *buf, size_t len)
{
	return ~bdsnap_crc32c_update(~0U, buf, len);
}

static void bdsnap_store_release(struct bdsnap_session *s, bool remove)
{
	struct bdsnap_store *st = &s->store;
	static const char * const files[] = { "blocks.dat", "blocks.map", "meta.json" };
	struct file **fp[] = { &st->dat, &st->map, &st->meta };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(fp); i++) {
		if (!IS_ERR_OR_NULL(*fp[i])) {
			fput(*fp[i]);
			if (remove)
				bdsnap_remove_at(&st->path, files[i], false);
		}
		*fp[i] = NULL;
	}
	if (st->path.dentry) {
		path_put(&st->path);
		st->path.dentry = NULL;
		if (remove) {
			bdsnap_remove_at(&s->dev->root, s->id, true);
			bdsnap_fsync_at(&s->dev->root);
		}
	}
	if (remove) {
		kfree(st->dir);
		st->dir = NULL;
	}
	kvfree(st->pending);
	st->pending = NULL;
}

/* The header at offset 0 of blocks.map, as st->hdr says, with its CRC. */
static int bdsnap_write_header(struct bdsnap_store *st)
{
	loff_t pos = 0;

	st->hdr.header_crc = cpu_to_le32(bdsnap_crc32c(&st->hdr,
				offsetof(struct bdsnap_map_header, header_crc)));
	return bdsnap_write_all(st->map, &st->hdr, sizeof(st->hdr), &pos);
}

/* Zeroes in blocks.map up to at least @end, in BDSNAP_MAP_STEP steps. */
static int bdsnap_map_reserve(struct bdsnap_store *st, loff_t end)
{
	const void *zero = page_address(ZERO_PAGE(0));
	loff_t to = round_up(end, BDSNAP_MAP_STEP);
	int ret;

	while (st->map_alloc < to) {
		loff_t pos = st->map_alloc;

		ret = bdsnap_write_all(st->map, zero, PAGE_SIZE - offset_in_page(pos), &pos);
		if (ret)
			return ret;
		st->map_alloc = pos;
	}
	return 0;
}

/* Create the session directory and files. From a kworker. */
int bdsnap_store_open(struct bdsnap_session *s, const char *name)
{
	struct bdsnap_store *st = &s->store;
	struct bdsnap_map_header *hdr;
	const struct path *root = &s->dev->root;
	struct tm tm;
	char ts[32];
	u32 ns;
	int ret, i;

	time64_to_tm(div_u64_rem(s->mount_time_ns, NSEC_PER_SEC, &ns), 0, &tm);
	snprintf(ts, sizeof(ts), "%04ld%02d%02dT%02d%02d%02d.%06uZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ns / 1000);

	for (i = 0; i < 1000; i++) {
		if (i)
			snprintf(s->id, sizeof(s->id), "%s_%s-%d", name, ts, i);
		else
			snprintf(s->id, sizeof(s->id), "%s_%s", name, ts);
		ret = bdsnap_mkdir_at(root, s->id, 0700, &st->path);
		if (ret != -EEXIST)
			break;
	}
	if (ret)
		return ret;
	/* For messages and the deactivation record, relative to the root. */
	st->dir = kasprintf(GFP_KERNEL, "%s/%s", bdsnap_store_root, s->id);
	ret = -ENOMEM;
	if (!st->dir)
		goto err;

	st->pending = kvcalloc(BDSNAP_MAX_PENDING, sizeof(*st->pending), GFP_KERNEL);
	ret = -ENOMEM;
	if (!st->pending)
		goto err;
	st->dat = bdsnap_create_at(&st->path, "blocks.dat");
	st->map = bdsnap_create_at(&st->path, "blocks.map");
	st->meta = bdsnap_create_at(&st->path, "meta.json");
	ret = IS_ERR(st->dat) ? PTR_ERR(st->dat) :
	      IS_ERR(st->map) ? PTR_ERR(st->map) :
	      IS_ERR(st->meta) ? PTR_ERR(st->meta) : 0;
	if (ret)
		goto err;

	hdr = &st->hdr;
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr->magic, BDSNAP_MAP_MAGIC, sizeof(hdr->magic));
	hdr->version = cpu_to_le32(BDSNAP_MAP_VERSION);
	hdr->header_size = cpu_to_le32(sizeof(struct bdsnap_map_header));
	hdr->record_size = cpu_to_le32(sizeof(struct bdsnap_map_record));
	hdr->chunk_size = cpu_to_le32(s->chunk_size);
	hdr->device_size = cpu_to_le64(s->size);
	hdr->logical_block_size = cpu_to_le32(s->lbs);
	hdr->flags = cpu_to_le32(BDSNAP_MAP_F_WRITE_AHEAD);
	ret = bdsnap_write_header(st);
	if (ret)
		goto err;
	st->map_off = sizeof(*hdr);
	st->map_alloc = sizeof(*hdr);
	ret = bdsnap_map_reserve(st, st->map_off + 1);
	if (ret)
		goto err;
	ret = vfs_fsync(st->map, 0);
	if (ret)
		goto err;
	st->meta_size = BDSNAP_META_SIZE;
	/* Before publication: a store that cannot even say "open" is no store. */
	ret = bdsnap_store_write_meta(s);
	if (ret)
		goto err;
	bdsnap_fsync_at(&st->path);
	bdsnap_fsync_at(root);
	return 0;
err:
	bdsnap_store_release(s, true);
	return ret;
}

/* Append one extent's data; its record waits in memory for the next sync. */
int bdsnap_store_append(struct bdsnap_session *s, struct bdsnap_extent *e)
{
	struct bdsnap_store *st = &s->store;
	struct bdsnap_map_record *rec;
	loff_t pos = st->dat_off;
	u32 crc = ~0U, off = 0, i;
	int ret;

	if (WARN_ON_ONCE(st->nr_pending >= BDSNAP_MAX_PENDING))
		return -EINVAL;
	for (i = 0; i < e->nr_pages && off < e->bytes; i++) {
		u32 len = min_t(u32, PAGE_SIZE, e->bytes - off);
		void *p = kmap_local_page(e->bvec[i].bv_page);

		crc = bdsnap_crc32c_update(crc, p, len);
		ret = bdsnap_write_all(st->dat, p, len, &pos);
		kunmap_local(p);
		if (ret)
			return ret;
		off += len;
	}

	rec = &st->pending[st->nr_pending];
	rec->dev_offset = cpu_to_le64(e->first << s->chunk_shift);
	rec->dat_offset = cpu_to_le64(st->dat_off);
	rec->length = cpu_to_le32(e->bytes);
	rec->data_crc = cpu_to_le32(~crc);
	rec->seq = cpu_to_le32(st->records + st->nr_pending);
	rec->record_crc = cpu_to_le32(bdsnap_crc32c(rec,
				offsetof(struct bdsnap_map_record, record_crc)));
	st->nr_pending++;
	st->dat_off = pos;
	st->dat_dirty = true;
	return 0;
}

/*
 * blocks.dat durable, then the waiting records into blocks.map, then
 * blocks.map durable: every extent appended so far is now safe.
 */
int bdsnap_store_sync(struct bdsnap_session *s)
{
	struct bdsnap_store *st = &s->store;
	int ret;

	if (st->dat_dirty) {
		ret = vfs_fsync(st->dat, 1);
		if (ret)
			return ret;
		st->dat_dirty = false;
	}
	if (st->nr_pending) {
		size_t len = st->nr_pending * sizeof(*st->pending);
		loff_t pos = st->map_off;
		u64 bytes = 0;
		u32 i;

		ret = bdsnap_map_reserve(st, pos + len);
		if (ret)
			return ret;
		ret = bdsnap_write_all(st->map, st->pending,
				       len, &pos);
		if (ret)
			return ret;
		for (i = 0; i < st->nr_pending; i++)
			bytes += le32_to_cpu(st->pending[i].length);
		st->map_off = pos;
		WRITE_ONCE(st->map_bytes, st->map_bytes + bytes);
		WRITE_ONCE(st->records, st->records + st->nr_pending);
		st->nr_pending = 0;
		st->map_dirty = true;
	}
	if (st->map_dirty) {
		ret = vfs_fsync(st->map, 1);
		if (ret)
			return ret;
		st->map_dirty = false;
	}
	return 0;
}

/*
 * The session failed: say so in the header, in place, and make it durable
 * before any unsaved write is let through. The records synced so far stay
 * valid; fail_records says how many there were.
 */
int bdsnap_store_mark_failed(struct bdsnap_session *s)
{
	struct bdsnap_store *st = &s->store;
	int ret;

	st->hdr.flags |= cpu_to_le32(BDSNAP_MAP_F_FAILED);
	st->hdr.fail_errno = cpu_to_le32(-s->error);
	st->hdr.fail_records = cpu_to_le32(st->records);
	ret = bdsnap_write_header(st);
	if (!ret)
		ret = vfs_fsync(st->map, 1);
	return ret;
}

int bdsnap_store_write_meta(struct bdsnap_session *s)
{
	struct bdsnap_store *st = &s->store;
	size_t size;
	loff_t pos = 0;
	char *buf;
	int len, ret;

	buf = kmalloc(BDSNAP_META_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	len = bdsnap_meta_render(s, buf, BDSNAP_META_MAX);
	if (len < 0) {
		kfree(buf);
		return len;
	}
	/* Same size every time: the rewrite then needs no new blocks. */
	size = len + 1 <= st->meta_size ? st->meta_size : round_up(len + 1, 4096);
	if (size > BDSNAP_META_MAX) {
		kfree(buf);
		return -E2BIG;
	}
	memset(buf + len, ' ', size - len - 1);
	buf[size - 1] = '\n';
	ret = bdsnap_write_all(st->meta, buf, size, &pos);
	if (!ret) {
		st->meta_size = size;
		ret = vfs_fsync(st->meta, 1);
	}
	kfree(buf);
	return ret;
}

/* Last words of a session: everything durable, meta.json final. */
void bdsnap_store_close(struct bdsnap_session *s, bool discard)
{
	struct bdsnap_store *st = &s->store;
	unsigned long flags;
	int ret;

	if (READ_ONCE(s->state) == BDSNAP_SESSION_OPEN) {
		ret = bdsnap_store_sync(s);
		if (ret) {
			/* Nobody holds the session any more: fail it here. */
			spin_lock_irqsave(&s->lock, flags);
			s->state = BDSNAP_SESSION_FAILED;
			s->error = ret;
			s->error_what = "syncing the store at unmount";
			spin_unlock_irqrestore(&s->lock, flags);
			pr_err("%s: session %s failed: %pe (syncing the store at unmount)\n",
			       s->dev->name, s->id, ERR_PTR(ret));
			atomic64_inc(&bdsnap_total_failed);
		}
	}
	if (discard && !st->records) {
		bdsnap_store_release(s, true);
		return;
	}
	/* Closed: the map ends at its last record (docs/FORMAT.md). */
	ret = vfs_truncate(&st->map->f_path, st->map_off);
	if (!ret)
		ret = vfs_fsync(st->map, 0);
	if (ret)
		pr_err("%s: session %s: cannot trim blocks.map: %pe\n",
		       s->dev->name, s->id, ERR_PTR(ret));
	if (s->state != BDSNAP_SESSION_OPEN && !s->fail_recorded) {
		ret = bdsnap_store_mark_failed(s);
		if (ret)
			pr_err("%s: session %s: cannot record its failure in blocks.map: %pe\n",
			       s->dev->name, s->id, ERR_PTR(ret));
	}
	ret = bdsnap_store_write_meta(s);
	if (ret)
		pr_err("%s: session %s: cannot write meta.json: %pe\n",
		       s->dev->name, s->id, ERR_PTR(ret));
	/* st->dir stays, for bdsnap_store_rewrite_meta() at deactivation. */
	bdsnap_store_release(s, false);
}

/*
 * meta.json of a closed session, opened again below the store root the
 * device still holds (the session directory may have been pruned
 * meanwhile: -ENOENT). From a kworker.
 */
int bdsnap_store_rewrite_meta(struct bdsnap_session *s, const struct path *root)
{
	struct bdsnap_store *st = &s->store;
	char *rel;
	int ret;

	rel = kasprintf(GFP_KERNEL, "%s/meta.json", s->id);
	if (!rel)
		return -ENOMEM;
	st->meta = bdsnap_open_at(root, rel);
	kfree(rel);
	if (IS_ERR(st->meta)) {
		ret = PTR_ERR(st->meta);
		st->meta = NULL;
		return ret;
	}
	ret = bdsnap_store_write_meta(s);
	fput(st->meta);
	st->meta = NULL;
	return ret;
}
