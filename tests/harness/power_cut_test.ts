/**
 * A few power cuts on every kernel of the run (BDSNAP_TEST_KERNELS): the
 * reliability suite's power_cut scenario (tests/reliability/power_cut.ts)
 * with BDSNAP_POWER_CUTS cuts (default 2: one with QEMU killed, one with the
 * guest's sysrq b; `deno task test`'s core tier gives 1, whose method the
 * seed draws). Each cut must restore exactly (whole-device sha256 equal
 * to the pre-mount one) and lose no flushed origin write. The full count
 * (20 per kernel) is `deno task test:reliability --only power_cut`.
 */
import assert from "node:assert/strict";
import { parseSeries, provisionKernel } from "../../scripts/vm/kernels.ts";
import { runPowerCut } from "../reliability/power_cut.ts";

const kernels = (Deno.env.get("BDSNAP_TEST_KERNELS") ?? "6.1,6.12").split(",").map(parseSeries);
const cuts = Number(Deno.env.get("BDSNAP_POWER_CUTS") ?? 2);
// A new draw every run (the delays), printed so a failure can be repeated.
const seed = Number(Deno.env.get("BDSNAP_POWER_CUT_SEED") ?? Date.now() % 1_000_000);

for (const series of kernels) {
  Deno.test(`[${series}] ${cuts} power cuts: every interrupted session restores exactly`, async () => {
    const k = await provisionKernel(series);
    const r = await runPowerCut(k, {
      runs: 1,
      cuts,
      fuzzCalls: 0,
      soakMinutes: 0,
      stressSeconds: 0,
      seed,
      keep: false,
    }, { how: cuts === 1 ? "random" : "alternate" }); // one cut: the seed picks kill or sysrq b
    const summary = `seed ${seed} (BDSNAP_POWER_CUT_SEED), ${r.seconds} s: ` +
      `${r.passed}/${r.runs} passed, ${r.dataLost} lost\n${r.notes.join("\n")}` +
      (r.logs.length ? `\nlogs: ${r.logs.join(", ")}` : "");
    console.log(`power cuts on ${k.release}: ${summary}`);
    assert.equal(r.metrics.exact_count, cuts, summary);
    assert.equal(r.dataLost, 0, summary);
    assert.equal(r.passed, cuts, summary);
  });
}
