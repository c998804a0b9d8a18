// SPDX-License-Identifier: GPL-2.0
/* Always compiles: proves the probe setup itself works. */
#include <linux/kernel.h>

int bdsnap_probe(void);
int bdsnap_probe(void)
{
	return 0;
}
