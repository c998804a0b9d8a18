/**
 * The dmesg gate: a run fails on any kernel report of a bug, even when the
 * guest command itself succeeded.
 * @module
 */

/** Kernel log patterns that mean something went wrong in the kernel. */
const BAD: [RegExp, string][] = [
  [/\bWARNING: /, "WARNING"],
  [/\bBUG: /, "BUG"],
  [/kernel BUG at /, "BUG"],
  [/\bOops\b/, "oops"],
  [/general protection fault/, "general protection fault"],
  [/Unable to handle kernel/, "bad kernel access"],
  [/Kernel panic/, "panic"],
  [/possible (recursive|circular) locking/, "lockdep"],
  [/inconsistent lock state|lock held when returning|suspicious RCU usage/, "lockdep"],
  [/INFO: possible .*(dependency|deadlock)|INFO: trying to register non-static key/, "lockdep"],
  [/\bKASAN\b/, "KASAN"],
  [/\bUBSAN\b/, "UBSAN"],
  [/blocked for more than \d+ seconds/, "hung task"],
  [/soft lockup|hard LOCKUP/, "lockup"],
  [/rcu: INFO: .*stall|self-detected stall/, "RCU stall"],
  [/kmemleak: \d+ new suspected memory leaks/, "kmemleak"],
  // The report the guest reads from /sys/kernel/debug/kmemleak (debug kernel).
  [/^\s*unreferenced object 0x/, "kmemleak"],
  [/\bODEBUG: .*object type/, "debug objects"],
  [/list_(add|del) corruption/, "list corruption"],
  [/refcount_t: /, "refcount"],
  [/\bCall Trace:/, "call trace"],
];

/** One finding: what kind and the line that showed it. */
export interface GateFinding {
  kind: string;
  line: string;
}

/** Scan kernel log text; returns the findings, first per kind and line. */
export function scanKernelLog(text: string): GateFinding[] {
  const findings: GateFinding[] = [];
  const seen = new Set<string>();
  for (const line of text.split("\n")) {
    for (const [re, kind] of BAD) {
      if (!re.test(line)) continue;
      const key = `${kind}:${line.replace(/^\[[^\]]*\]\s*/, "")}`;
      if (!seen.has(key)) {
        seen.add(key);
        findings.push({ kind, line: line.trim() });
      }
      break;
    }
  }
  return findings;
}
