// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the per-session index of chunks already claimed (their pre-image
 * is saved or being read). One bit per chunk, in 4 KiB bitmap pages that
 * are allocated only when a write first touches their range: an xarray of
 * pages, so a session that writes little costs little, and the worst case
 * is one bit per chunk (32 KiB per GiB at 4 KiB chunks).
 *
 * Pages are added with bdsnap_chunkmap_prepare() outside the session lock
 * (it may sleep); lookups and bit updates then run under the session lock
 * and only read the xarray (RCU), so they never allocate.
 */
#include <linux/bitmap.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/xarray.h>

#include "core.h"

#define CM_BITS		(PAGE_SIZE * BITS_PER_BYTE)

void bdsnap_chunkmap_init(struct bdsnap_chunkmap *m, u64 nr_chunks)
{
	xa_init(&m->pages);
	m->nr_chunks = nr_chunks;
}

void bdsnap_chunkmap_destroy(struct bdsnap_chunkmap *m)
{
	unsigned long idx;
	void *p;

	xa_for_each(&m->pages, idx, p)
		free_page((unsigned long)p);
	xa_destroy(&m->pages);
}

/* Make sure the bitmap pages for chunks first..last exist. Task context. */
int bdsnap_chunkmap_prepare(struct bdsnap_chunkmap *m, u64 first, u64 last,
			    gfp_t gfp)
{
	unsigned long idx, end = last / CM_BITS;

	for (idx = first / CM_BITS; idx <= end; idx++) {
		void *p, *old;

		if (xa_load(&m->pages, idx))
			continue;
		p = (void *)get_zeroed_page(gfp | __GFP_NOWARN);
		if (!p)
			return -ENOMEM;
		old = xa_cmpxchg(&m->pages, idx, NULL, p, gfp | __GFP_NOWARN);
		if (old) {
			/* Lost a race, or the xarray could not grow. */
			free_page((unsigned long)p);
			if (xa_is_err(old))
				return xa_err(old);
		}
	}
	return 0;
}

/* The first clear chunk in from..to, or to + 1 if there is none. */
u64 bdsnap_chunkmap_next_clear(struct bdsnap_chunkmap *m, u64 from, u64 to)
{
	while (from <= to) {
		unsigned long *bits = xa_load(&m->pages, from / CM_BITS);
		unsigned long off = from % CM_BITS, bit;

		if (!bits)
			return from;
		bit = find_next_zero_bit(bits, CM_BITS, off);
		if (bit < CM_BITS)
			return min(from - off + bit, to + 1);
		from += CM_BITS - off;
	}
	return to + 1;
}

/* How many chunks from 'from' on are clear, not looking past 'to'. */
u64 bdsnap_chunkmap_clear_run(struct bdsnap_chunkmap *m, u64 from, u64 to)
{
	u64 pos = from;

	while (pos <= to) {
		unsigned long *bits = xa_load(&m->pages, pos / CM_BITS);
		unsigned long off = pos % CM_BITS, bit;

		if (!bits) {
			pos += CM_BITS - off;
			continue;
		}
		bit = find_next_bit(bits, CM_BITS, off);
		if (bit < CM_BITS) {
			pos += bit - off;
			break;
		}
		pos += CM_BITS - off;
	}
	return min(pos, to + 1) - from;
}

/* Mark n chunks from first as claimed; their pages must be prepared. */
void bdsnap_chunkmap_set(struct bdsnap_chunkmap *m, u64 first, u64 n)
{
	while (n) {
		unsigned long *bits = xa_load(&m->pages, first / CM_BITS);
		unsigned long off = first % CM_BITS;
		unsigned long len = min_t(u64, n, CM_BITS - off);

		if (!WARN_ON_ONCE(!bits))
			bitmap_set(bits, off, len);
		first += len;
		n -= len;
	}
}
