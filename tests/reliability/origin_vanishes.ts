/**
 * Origin vanishes: the activated device disappears during a written session
 * (PCI hot-remove of the virtio disk, loop detach, dm table wiped and the
 * device removed). No crash, no hang, the session ends closed or failed,
 * deactivation by name works, the module unloads. Guest side:
 * origin_vanishes.sh.
 * @module
 */
import { guestScenario, MiB } from "./_scenario.ts";

const VARIANTS = ["loop", "dm", "pci"];

export const originVanishes = guestScenario({
  name: "origin_vanishes",
  summary: "activated disk hot-removed (PCI), loop detached, dm removed mid-session",
  script: () => ["origin_vanishes.sh", ...VARIANTS],
  vm: () => ({ disks: 3, diskSize: 256 * MiB, storeSize: 512 * MiB, timeout: 1200 }),
  expected: VARIANTS.length,
  rounds: (o) => o.runs,
});
