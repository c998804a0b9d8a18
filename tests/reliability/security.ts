/**
 * Security: an unprivileged user gets EPERM from both system calls and every
 * ioctl (and cannot open /dev/bdsnap); no parameter shows the password hash;
 * the store is 0700/0600; no raw kernel address in the module's log or
 * source (%px, pointers cast to integers in printk); password failures are
 * rate-limited (measured). Guest side: security.sh, security.py.
 * @module
 */
import { REPO } from "../../scripts/vm/paths.ts";
import { guestScenario, MiB } from "./_scenario.ts";

/** printk-family lines of kmod/*.c that could print a kernel address unhashed. */
export async function pointerPrints(dir = `${REPO}/kmod`): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !/\.[ch]$/.test(e.name)) continue;
    const lines = (await Deno.readTextFile(`${dir}/${e.name}`)).split("\n");
    lines.forEach((line, i) => {
      // A statement can span lines: look at this line and the next two.
      const stmt = lines.slice(i, i + 3).join(" ");
      const isPrint = /\b(pr_\w+|printk|dev_\w+|WARN\w*|seq_printf|snprintf|sprintf)\s*\(/.test(
        line,
      );
      if (/%px|%pK/.test(line)) found.push(`${e.name}:${i + 1}: ${line.trim()}`);
      else if (
        isPrint && /%(l|ll)?x/.test(stmt) &&
        /\(\s*(unsigned long|uintptr_t|unsigned long long|u64)\s*\)/.test(stmt)
      ) found.push(`${e.name}:${i + 1}: ${line.trim()}`);
    });
  }
  return found;
}

export const security = guestScenario({
  name: "security",
  summary: "unprivileged EPERM, hidden hash, store modes, no raw pointers, password rate limit",
  script: () => ["security.sh"],
  vm: () => ({ disks: 1, storeSize: 256 * MiB, timeout: 900 }),
  expected: 5,
  // The source check is the same for every kernel; it is one more run.
  finish: async (r) => {
    const hits = await pointerPrints();
    r.runs += 1;
    if (hits.length === 0) {
      r.passed += 1;
      r.notes.push("source: no %px/%pK and no pointer printed as an integer in kmod/");
    } else r.notes.push(`FAILED: raw pointer prints: ${hits.join(" | ")}`);
  },
});
