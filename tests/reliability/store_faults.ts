/**
 * Store faults: /snapshot on a device-mapper target over the store disk,
 * switched live (suspend, reload, resume) from `linear` to `error`, and to
 * `flakey`, while the origin is written. The session must fail, every
 * origin write succeed and verify (cmp, fio crc32c), the kernel log stay
 * clean and the module unload. Guest side: store_faults.sh.
 * @module
 */
import { guestScenario, MiB } from "./_scenario.ts";

const VARIANTS = ["error", "flakey"];

export const storeFaults = guestScenario({
  name: "store_faults",
  summary: "store on dm linear switched live to error / flakey mid-session",
  script: () => ["store_faults.sh", ...VARIANTS],
  vm: () => ({ disks: 1, diskSize: 256 * MiB, storeSize: 512 * MiB, timeout: 1500 }),
  expected: VARIANTS.length,
  rounds: (o) => o.runs,
});
