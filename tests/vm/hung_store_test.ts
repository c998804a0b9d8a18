// vm: disks=1 disk-size=256M store-size=256M timeout=600 tier=full
/**
 * The store stops answering mid-session (its dm-linear device suspended):
 * the module's watchdog (watchdog_secs, set to 10 s) fails the session and
 * lets every held write through: buffered, fsync and O_DIRECT writers get
 * through within watchdog + 30 s, the unmount returns with the store still
 * suspended, no task is reported hung (the guest's detector runs with a
 * timeout below the writers' bound; the harness's dmesg gate reads it).
 * The reliability suite's hung_store scenario, one round
 * (tests/reliability/hung_store.sh).
 */
import assert from "node:assert/strict";
import { shTry } from "./_helpers.ts";

const script = new URL("../reliability/hung_store.sh", import.meta.url).pathname;

Deno.test("a suspended store fails the session within the watchdog and every origin write gets through", async () => {
  const slow = Deno.env.get("BDSNAP_KERNEL_SERIES") === "debug" ? "6" : "1";
  const r = await shTry(`bash ${script} 1`, { HS_WATCHDOG: "10", BDSNAP_SLOW: slow });
  const out = r.stdout + r.stderr;
  console.log(out.split("\n").filter((l) => /^@@(RUN|NOTE) |^watch: /.test(l)).join("\n"));
  const runs = out.split("\n").filter((l) => l.startsWith("@@RUN ")).map((l) =>
    JSON.parse(l.slice(6)) as { ok: boolean; note: string }
  );
  assert.equal(r.code, 0, out.slice(-4000));
  assert.ok(runs.length >= 1, `no result from the guest script:\n${out.slice(-4000)}`);
  for (const run of runs) assert.ok(run.ok, `${run.note}\n${out.slice(-4000)}`);
});
