/**
 * Control under stress: 8 threads activate, deactivate (system calls and
 * ioctls), mount, write and unmount across 4 devices, while rmmod is tried
 * every half second (refused: an image file stays activated throughout) and
 * STATUS/LIST are cross-checked. Then: nothing mounted or activated, status
 * empty, every session in the store closed, each filesystem clean, the
 * module unloads. Guest side: control_stress.sh, control_stress.py.
 * @module
 */
import { guestScenario, MiB } from "./_scenario.ts";

export const controlStress = guestScenario({
  name: "control_stress",
  summary: "8 threads activate/deactivate/mount/umount 4 devices, rmmod attempts in between",
  script: (o) => ["control_stress.sh", String(o.stressSeconds)],
  vm: (o) => ({
    disks: 4,
    diskSize: 64 * MiB,
    storeSize: 1024 * MiB,
    timeout: o.stressSeconds + 900,
  }),
  expected: 1,
  finish: (r, _b, o) => void r.notes.unshift(`${o.stressSeconds} s of stress`),
});
