/**
 * Control-interface fuzzing: random and hostile arguments to both system
 * calls and every ioctl from 4 threads, while a fifth keeps activating a
 * real disk correctly. Every call returns an errno in bounded time, nothing
 * succeeds that must not, the password is unchanged, the kernel log stays
 * clean (the dmesg gate), the module unloads. Guest side: control_fuzz.py.
 * @module
 */
import { guestScenario, MiB } from "./_scenario.ts";

export const controlFuzz = guestScenario({
  name: "control_fuzz",
  summary: "hostile arguments to both system calls and every ioctl, 4 threads at once",
  script: (o) => ["control_fuzz.sh", String(o.fuzzCalls)],
  vm: (o) => ({ disks: 1, storeSize: 256 * MiB, timeout: 600 + o.fuzzCalls / 10 }),
  expected: 1,
  finish: (r, _b, o) => {
    // One run line reports all cases: count each call as a run.
    const n = ((r.metrics.cases ?? []) as number[])[0] ?? o.fuzzCalls;
    r.passed = r.passed === 1 ? n : 0;
    r.runs = n;
  },
});
