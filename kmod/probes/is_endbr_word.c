// SPDX-License-Identifier: GPL-2.0
/*
 * 7.x with IBT: is_endbr() takes a pointer (and is not exported); checking
 * an instruction word already read is __is_endbr(u32 word). (A probe's
 * name may not start with "__": kbuild reserves such targets.)
 */
#include <linux/types.h>
#include <asm/ibt.h>

bool bdsnap_probe(u32 insn);
bool bdsnap_probe(u32 insn)
{
	return __is_endbr(insn);
}
