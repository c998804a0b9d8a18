// vm: disks=1 disk-size=1G store-size=0 timeout=900 tier=full
/**
 * Every crash point, reduced (issue 17): the reliability suite's
 * crash_points scenario (tests/reliability/crash_points.sh) in this VM with
 * 100 sampled write boundaries and a short workload; every FLUSH/FUA entry
 * of the session's log is a point as well. At each point the crashed store
 * must restore the crashed origin to its exact pre-mount image, without
 * --accept-gap or --force; every 50th point (and the last) also through `bdsnap restore`.
 * The full count is `deno task test:reliability --only crash_points`.
 */
import assert from "node:assert/strict";
import { shTry } from "./_helpers.ts";

const script = new URL("../reliability/crash_points.sh", import.meta.url).pathname;

Deno.test("every crash point of a session (100 sampled + every flush): exact restore from the crashed store", async () => {
  const seed = Deno.env.get("BDSNAP_CRASH_SEED") ?? String(Date.now() % 1_000_000);
  const r = await shTry(`bash ${script}`, {
    CP_POINTS: Deno.env.get("BDSNAP_CRASH_POINTS") ?? "100",
    CP_SEED: seed,
    CP_CLI_EVERY: "50",
    CP_WORK_SECONDS: "3",
  });
  const out = r.stdout + r.stderr;
  console.log(
    out.split("\n").filter((l) => /^(@@NOTE |log: |workload: |FIRST FAILING|setup and)/.test(l))
      .join("\n"),
  );
  const runs = out.split("\n").filter((l) => l.startsWith("@@RUN ")).map((l) =>
    JSON.parse(l.slice(6)) as { ok: boolean; note: string; metrics: Record<string, number> }
  );
  assert.equal(
    runs.length,
    1,
    `no result from the guest script (seed ${seed}):\n${out.slice(-4000)}`,
  );
  const run = runs[0];
  console.log(run.note);
  assert.equal(r.code, 0, out.slice(-4000));
  assert.ok(run.ok, `seed ${seed} (BDSNAP_CRASH_SEED): ${run.note}`);
  assert.equal(run.metrics.inexact, 0, run.note);
  assert.ok(run.metrics.points >= 100, run.note);
});
