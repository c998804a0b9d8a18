/**
 * Hung store: /snapshot on a dm-linear device over the store disk, suspended
 * (`dmsetup suspend --nolockfs`: its I/O queues and does not complete) while
 * buffered, fsync and O_DIRECT writers write the activated origin. With the
 * module's watchdog set low (watchdog_secs, HS_WATCHDOG s), the session must
 * fail and release every held write: the writers get through within
 * watchdog + 30 s, the unmount returns with the store still suspended, no
 * task is reported hung (hung_task_timeout_secs below the writers' bound;
 * the dmesg gate fails the boot on a report). Then the store resumes, reads
 * the session as failed, and deactivate, unmount and dmsetup remove work.
 * Guest side: hung_store.sh, hung_store.py.
 * @module
 */
import { guestScenario, MiB } from "./_scenario.ts";

/** The watchdog the scenario sets (seconds; times the kernel's slow factor in the guest). */
export const HUNG_STORE_WATCHDOG = 10;

export const hungStore = guestScenario({
  name: "hung_store",
  summary:
    "store's dm device suspended mid-session: watchdog fails the session, writes get through",
  script: () => ["hung_store.sh", "1"],
  vm: () => ({
    disks: 1,
    diskSize: 256 * MiB,
    storeSize: 256 * MiB,
    timeout: 900,
    env: { HS_WATCHDOG: String(HUNG_STORE_WATCHDOG) },
  }),
  expected: 1,
  rounds: (o) => o.runs,
});
