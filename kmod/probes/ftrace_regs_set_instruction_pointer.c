// SPDX-License-Identifier: GPL-2.0
/* 6.7+: ftrace_regs_set_instruction_pointer() (was ftrace_instruction_pointer_set). */
#include <linux/ftrace.h>

void bdsnap_probe(struct ftrace_regs *fregs);
void bdsnap_probe(struct ftrace_regs *fregs)
{
	ftrace_regs_set_instruction_pointer(fregs, 0UL);
}
