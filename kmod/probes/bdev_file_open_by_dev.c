// SPDX-License-Identifier: GPL-2.0
/* 6.9+: block devices are opened as files. */
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/err.h>

struct block_device *bdsnap_probe(dev_t dev);
struct block_device *bdsnap_probe(dev_t dev)
{
	struct file *f = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL, NULL);
	struct block_device *bdev;

	if (IS_ERR(f))
		return NULL;
	bdev = file_bdev(f);
	fput(f);
	return bdev;
}
