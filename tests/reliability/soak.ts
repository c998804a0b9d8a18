/**
 * Soak: 4 activated ext4 disks under fio crc32c verify for M minutes of
 * guest time; then all 4 restored exactly (sha256 before the mount equals
 * sha256 after the restore), and kernel memory back near its baseline once
 * the sessions closed (SUnreclaim, Slab, the module's in-flight bytes).
 * Guest side: soak.sh.
 * @module
 */
import { guestScenario, MiB } from "./_scenario.ts";

export const soak = guestScenario({
  name: "soak",
  summary: "4 devices under fio verify, exact restores, memory back to baseline",
  script: (o) => ["soak.sh", String(o.soakMinutes)],
  vm: (o) => ({
    disks: 4,
    diskSize: 160 * MiB,
    storeSize: 1024 * MiB,
    timeout: o.soakMinutes * 60 * 2 + 1800,
  }),
  expected: 1,
});
