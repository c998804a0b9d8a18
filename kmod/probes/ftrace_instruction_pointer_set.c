// SPDX-License-Identifier: GPL-2.0
/* 5.11..6.6: ftrace_instruction_pointer_set(). */
#include <linux/ftrace.h>

void bdsnap_probe(struct ftrace_regs *fregs);
void bdsnap_probe(struct ftrace_regs *fregs)
{
	ftrace_instruction_pointer_set(fregs, 0UL);
}
