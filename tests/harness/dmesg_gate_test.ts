/**
 * The harness's own guarantees, checked on each kernel: a clean run passes,
 * and a kernel WARNING fails the run even though the guest command succeeded.
 * On the first kernel: a boot that never reaches its command is killed at its
 * boot deadline, not the run's limit, and booted again up to BOOT_ATTEMPTS
 * boots in all.
 */
import assert from "node:assert/strict";
import { parseSeries, provisionKernel } from "../../scripts/vm/kernels.ts";
import { buildModuleDir, fixturesDir } from "../../scripts/vm/kmod.ts";
import { BOOT_ATTEMPTS, runVm, runVmRetryingBoot } from "../../scripts/vm/qemu.ts";
import { REPO } from "../../scripts/vm/paths.ts";

const kernels = (Deno.env.get("BDSNAP_TEST_KERNELS") ?? "6.1,6.12").split(",").map(parseSeries);

for (const series of kernels) {
  Deno.test(`[${series}] a WARNING in the kernel log fails a run whose command exited 0`, async () => {
    const k = await provisionKernel(series);
    const dir = await buildModuleDir(k, `${REPO}/tests/fixtures/modules`, fixturesDir(k));
    const r = await runVm({
      kernel: k,
      command: `insmod ${dir}/bdsnap_warn.ko && echo loaded`,
      disks: 0,
      storeSize: 0,
      timeout: 300,
      silent: true,
    });
    assert.equal(r.status, 0, `guest command should succeed:\n${r.output}`);
    assert.match(r.output, /loaded/);
    assert.ok(r.findings.some((f) => f.kind === "WARNING"), JSON.stringify(r.findings));
    assert.equal(r.ok, false, "the gate must fail the run");
    await Deno.remove(r.runDir, { recursive: true });
  });

  Deno.test(`[${series}] a clean run passes and reports the boot time`, async () => {
    const k = await provisionKernel(series);
    const r = await runVm({ kernel: k, command: "uname -r", disks: 1, timeout: 300 });
    assert.equal(r.status, 0, r.output);
    assert.equal(r.output.trim(), k.release);
    assert.deepEqual(r.findings, []);
    assert.ok(r.ok);
    assert.ok(r.bootSeconds !== null && r.bootSeconds > 0);
    console.log(`boot to command on ${k.release} (${r.accel}): ${r.bootSeconds!.toFixed(1)} s`);
  });
}

Deno.test(`[${kernels[0]}] a boot past its deadline is killed as hung and booted again, BOOT_ATTEMPTS boots in all`, async () => {
  const k = await provisionKernel(kernels[0]);
  const retries: string[] = [];
  const firstRuns: string[] = [];
  // No guest reaches its command in 2 s, even under KVM: every boot "hangs".
  const r = await runVmRetryingBoot(
    {
      kernel: k,
      command: "echo reached",
      disks: 0,
      storeSize: 0,
      timeout: 300,
      bootTimeout: 2,
      silent: true,
    },
    (why, first) => {
      assert.equal(first.bootHung, true);
      retries.push(why);
      firstRuns.push(first.runDir);
    },
  );
  assert.deepEqual(retries, Array(BOOT_ATTEMPTS - 1).fill("boot hung"));
  assert.equal(r.bootHung, true);
  assert.equal(r.timedOut, false, "the boot deadline, not the run's limit, must end it");
  assert.equal(r.bootSeconds, null);
  assert.equal(r.status, null);
  assert.equal(r.ok, false);
  assert.doesNotMatch(r.output, /reached/);
  for (const d of [...firstRuns, r.runDir]) await Deno.remove(d, { recursive: true });
});
