// SPDX-License-Identifier: GPL-2.0
/* Up to 6.4: blkdev_get_by_dev(dev, fmode_t, holder) / blkdev_put(bdev, fmode_t). */
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/err.h>

int bdsnap_probe(dev_t dev);
int bdsnap_probe(dev_t dev)
{
	struct block_device *bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);

	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	blkdev_put(bdev, FMODE_READ);
	return 0;
}
