/** Unit tests of the VM harness's pure parts (no VM). */
import assert from "node:assert/strict";
import { scanKernelLog } from "../../scripts/vm/dmesg_gate.ts";
import { compareVersions, parseSeries } from "../../scripts/vm/kernels.ts";
import { parseSize } from "../../scripts/vm/qemu.ts";
import { parseDenoTestSummary } from "../../scripts/test.ts";

Deno.test("dmesg gate: finds warnings, bugs, lockdep, KASAN and hung tasks", () => {
  const log = [
    "[    1.0] bdsnap: loaded",
    "[    2.0] WARNING: CPU: 0 PID: 1 at drivers/x.c:10 f+0x1/0x2",
    "[    3.0] BUG: KASAN: slab-use-after-free in chunk_notify_store+0x40/0x190",
    "[    4.0] WARNING: possible circular locking dependency detected",
    "[    5.0] INFO: task kworker/0:1:42 blocked for more than 60 seconds.",
    "[    6.0] UBSAN: shift-out-of-bounds in x.c:1:2",
  ].join("\n");
  const kinds = scanKernelLog(log).map((f) => f.kind);
  assert.deepEqual(kinds, ["WARNING", "BUG", "WARNING", "hung task", "UBSAN"]);
});

Deno.test("dmesg gate: a clean boot log passes", () => {
  const log = [
    "[    0.0] Linux version 6.12.117+deb12-amd64",
    "[    1.0] bdsnap: module verification failed: signature and/or required key missing - tainting kernel",
    "[    1.1] EXT4-fs (vdb): mounted filesystem with ordered data mode.",
    "[    1.2] loop0: detected capacity change from 0 to 2048",
  ].join("\n");
  assert.deepEqual(scanKernelLog(log), []);
});

Deno.test("test summary parser reads deno test's closing line", () => {
  assert.deepEqual(parseDenoTestSummary("x\nok | 3 passed | 0 failed (2s)\n"), {
    passed: 3,
    failed: 0,
  });
  assert.deepEqual(
    parseDenoTestSummary("FAILED | 2 passed | 1 failed | 1 ignored (9ms)"),
    { passed: 2, failed: 1 },
  );
  assert.equal(parseDenoTestSummary("error: Module not found"), null);
});

Deno.test("sizes, series and versions parse as an admin writes them", () => {
  assert.equal(parseSize("512M"), 512 * 1024 ** 2);
  assert.equal(parseSize("2G"), 2 * 1024 ** 3);
  assert.equal(parseSize("4096"), 4096);
  assert.throws(() => parseSize("lots"), /bad size/);
  assert.equal(parseSeries("6.1"), "6.1");
  assert.throws(() => parseSeries("5.10"), /unknown kernel series/);
  assert.ok(compareVersions("6.1.0-56-amd64", "6.1.0-9-amd64") > 0);
  assert.ok(compareVersions("6.12.117+deb12-amd64", "6.12.99+deb12-amd64") > 0);
});
