// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the system calls activate_snapshot(dev_name, passwd) and
 * deactivate_snapshot(dev_name, passwd). The only x86-64 specific file.
 *
 * Both our kernels dispatch system calls through a switch (x64_sys_call)
 * rather than through sys_call_table, so there is no table to patch, and we
 * never write kernel text or read-only data anyway. A number the kernel
 * leaves unimplemented ends up in __x64_sys_ni_syscall(regs), where regs is
 * the caller's saved user register frame. A kprobe on that function checks
 * the frame's orig_ax: for one of our two numbers its pre-handler points the
 * probed context at our handler and returns 1, so execution continues there
 * with the same arguments and return address, as if x64_sys_call had called
 * our handler. Any other number passes through untouched: the only cost is
 * on the -ENOSYS path.
 *
 * The probe has a post-handler only so that kprobes does not jump-optimise
 * it (an optimised probe ignores a changed instruction pointer; with a
 * post-handler an ftrace-based probe is registered with IPMODIFY). The new
 * instruction pointer is reached by IRET or by the ftrace trampoline's RET,
 * neither of which IBT checks, and our handlers' addresses are taken so they
 * begin with ENDBR64 in any case.
 *
 * Numbers are the module parameters nr_activate and nr_deactivate (default
 * 183 afs_syscall and 184 tuxcall, which x86-64 has never implemented),
 * shown read-only in /sys/module/bdsnap/parameters/. A number is refused at
 * load unless it is in range, distinct, and unimplemented: in the syscall
 * list this module was built against (the one the kernel's dispatch was
 * generated from) and, where it can be read, in the running kernel's
 * sys_call_table (read only).
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/ptrace.h>
#include <linux/uaccess.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <asm/cpufeature.h>
#include <asm/ibt.h>
#include <asm/unistd.h>

#include "bdsnap.h"
#include "compat.h"

#ifndef CONFIG_X86_64
#error "bdsnap system calls are implemented for x86-64 only"
#endif

int bdsnap_nr_activate = __NR_afs_syscall;
int bdsnap_nr_deactivate = __NR_tuxcall;
module_param_named(nr_activate, bdsnap_nr_activate, int, 0444);
MODULE_PARM_DESC(nr_activate, "System call number of activate_snapshot (an unimplemented slot)");
module_param_named(nr_deactivate, bdsnap_nr_deactivate, int, 0444);
MODULE_PARM_DESC(nr_deactivate, "System call number of deactivate_snapshot (an unimplemented slot)");

#define BDSNAP_NI_SYMBOL	"__x64_sys_ni_syscall"

/*
 * The handlers run in the context of the system call, reached from the
 * kprobe below. The module reference keeps rmmod away while one runs; the
 * instructions before try_module_get and after module_put are covered by
 * synchronize_rcu_tasks() in bdsnap_syscall_exit().
 */
static long bdsnap_sys_activate(const struct pt_regs *regs)
{
	long ret;

	if (!try_module_get(THIS_MODULE))
		return -ENOSYS;
	ret = bdsnap_ctl_activate((const char __user *)regs->di,
				  (const char __user *)regs->si);
	module_put(THIS_MODULE);
	return ret;
}

static long bdsnap_sys_deactivate(const struct pt_regs *regs)
{
	long ret;

	if (!try_module_get(THIS_MODULE))
		return -ENOSYS;
	ret = bdsnap_ctl_deactivate((const char __user *)regs->di,
				    (const char __user *)regs->si);
	module_put(THIS_MODULE);
	return ret;
}

/*
 * At the probe, the probed function has not started: regs->di is its first
 * argument, the caller's user register frame, and the return address into
 * x64_sys_call is on top of the stack.
 */
static int bdsnap_ni_pre(struct kprobe *p, struct pt_regs *regs)
{
	const struct pt_regs *uregs = (const struct pt_regs *)regs->di;
	unsigned long target;
	int nr;

	/* Only the system call path: the frame must be current's own. */
	if (uregs != current_pt_regs())
		return 0;

	/* x64_sys_call dispatches on the low 32 bits, so compare those. */
	nr = (int)uregs->orig_ax;
	if (nr == bdsnap_nr_activate)
		target = (unsigned long)bdsnap_sys_activate;
	else if (nr == bdsnap_nr_deactivate)
		target = (unsigned long)bdsnap_sys_deactivate;
	else
		return 0;

	instruction_pointer_set(regs, target);
	return 1;
}
NOKPROBE_SYMBOL(bdsnap_ni_pre);

static void bdsnap_ni_post(struct kprobe *p, struct pt_regs *regs,
			   unsigned long flags)
{
}
NOKPROBE_SYMBOL(bdsnap_ni_post);

static struct kprobe bdsnap_ni_kp = {
	.symbol_name	= BDSNAP_NI_SYMBOL,
	.pre_handler	= bdsnap_ni_pre,
	.post_handler	= bdsnap_ni_post,
};

/* Is nr unimplemented in the syscall list the running kernel was built from? */
static bool __init bdsnap_nr_unimplemented_built(unsigned int nr)
{
	switch (nr) {
#define __SYSCALL(n, sym) case n: return !__builtin_strcmp(#sym, "sys_ni_syscall");
#define __SYSCALL_NORETURN(n, sym) __SYSCALL(n, sym)
#include <asm/syscalls_64.h>
#undef __SYSCALL_NORETURN
#undef __SYSCALL
	default:
		return false;
	}
}

/*
 * Address of a kernel function through a registered but disabled kprobe
 * (nothing is armed, no text is touched). On IBT kernels kprobes places a
 * function-entry probe after the ENDBR64, so step back over it.
 */
static unsigned long __init bdsnap_func_addr(const char *name)
{
	struct kprobe kp = { .symbol_name = name, .flags = KPROBE_FLAG_DISABLED };
	unsigned long addr;

	if (register_kprobe(&kp))
		return 0;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
#ifdef CONFIG_X86_KERNEL_IBT
	{
		u32 insn;

		if (!get_kernel_nofault(insn, (u32 *)(addr - ENDBR_INSN_SIZE)) &&
		    bdsnap_is_endbr(insn))
			addr -= ENDBR_INSN_SIZE;
	}
#endif
	return addr;
}

/*
 * May fn be called indirectly? Not if the CPU enforces IBT and fn's ENDBR64
 * has been sealed (6.12 seals kallsyms_lookup_name: nobody takes its address).
 */
static bool __init bdsnap_callable(unsigned long fn)
{
#ifdef CONFIG_X86_KERNEL_IBT
	u32 insn;

	if (!cpu_feature_enabled(X86_FEATURE_IBT))
		return true;
	return !get_kernel_nofault(insn, (u32 *)fn) && insn == gen_endbr();
#else
	return true;
#endif
}

/*
 * Cross-check against the running kernel: sys_call_table is no longer used
 * for dispatch but still lists every entry point. Read only. Returns 0 if
 * both slots hold __x64_sys_ni_syscall or the table cannot be found,
 * -EBUSY if one holds something else.
 */
static int __init bdsnap_check_running_table(void)
{
	unsigned long (*lookup)(const char *name);
	unsigned long fn, table, ni, entry;
	const int nrs[] = { bdsnap_nr_activate, bdsnap_nr_deactivate };
	int i;

	fn = bdsnap_func_addr("kallsyms_lookup_name");
	if (!fn || !bdsnap_callable(fn)) {
		pr_info("sys_call_table cross-check skipped: kallsyms_lookup_name not callable\n");
		return 0;
	}
	lookup = (void *)fn;
	table = lookup("sys_call_table");
	ni = lookup(BDSNAP_NI_SYMBOL);
	if (!table || !ni) {
		pr_info("sys_call_table cross-check skipped: symbols not found\n");
		return 0;
	}

	for (i = 0; i < ARRAY_SIZE(nrs); i++) {
		if (get_kernel_nofault(entry, (unsigned long *)table + nrs[i])) {
			pr_info("sys_call_table cross-check skipped: table unreadable\n");
			return 0;
		}
		if (entry != ni) {
			pr_err("system call %d is implemented in the running kernel (%pS); choose another nr_%s\n",
			       nrs[i], (void *)entry, i ? "deactivate" : "activate");
			return -EBUSY;
		}
	}
	return 0;
}

static int __init bdsnap_check_numbers(void)
{
	const int nrs[] = { bdsnap_nr_activate, bdsnap_nr_deactivate };
	int i;

	for (i = 0; i < ARRAY_SIZE(nrs); i++) {
		const char *which = i ? "nr_deactivate" : "nr_activate";

		if (nrs[i] < 0 || nrs[i] >= NR_syscalls) {
			pr_err("%s=%d is out of range 0..%d\n", which, nrs[i],
			       NR_syscalls - 1);
			return -EINVAL;
		}
		if (!bdsnap_nr_unimplemented_built(nrs[i])) {
			pr_err("%s=%d: system call %d is implemented by this kernel; choose an unimplemented slot (e.g. %d, %d)\n",
			       which, nrs[i], nrs[i], __NR_afs_syscall, __NR_tuxcall);
			return -EBUSY;
		}
	}
	if (bdsnap_nr_activate == bdsnap_nr_deactivate) {
		pr_err("nr_activate and nr_deactivate are both %d\n",
		       bdsnap_nr_activate);
		return -EINVAL;
	}
	return bdsnap_check_running_table();
}

int __init bdsnap_syscall_init(void)
{
	int ret;

	ret = bdsnap_check_numbers();
	if (ret)
		return ret;

	ret = register_kprobe(&bdsnap_ni_kp);
	if (ret) {
		pr_err("cannot probe %s: error %d\n", BDSNAP_NI_SYMBOL, ret);
		return ret;
	}
	pr_info("system calls activate_snapshot=%d deactivate_snapshot=%d\n",
		bdsnap_nr_activate, bdsnap_nr_deactivate);
	return 0;
}

void bdsnap_syscall_exit(void)
{
	unregister_kprobe(&bdsnap_ni_kp);
	/*
	 * No new redirection can happen now. Wait for every task that was sent
	 * to a handler to leave module text: the module reference covers the
	 * handler body, but not its first and last instructions. A task there
	 * has not passed a voluntary context switch, which is what RCU Tasks
	 * waits for.
	 */
	synchronize_rcu_tasks();
}
