/** Unit tests of the VM harness's pure parts (no VM). */
import assert from "node:assert/strict";
import { scanKernelLog } from "../../scripts/vm/dmesg_gate.ts";
import { compareVersions, parseSeries } from "../../scripts/vm/kernels.ts";
import { parseSize } from "../../scripts/vm/qemu.ts";
import { parseProfile } from "../../scripts/vm/qemu.ts";
import { harnessKernels, parseDenoTestSummary, rotatingKernel } from "../../scripts/test.ts";
import { timeTable } from "../../scripts/test_times.ts";
import { listsAge, updateFailures } from "../../scripts/vm/apt.ts";
import { stepKind } from "../../tests/vm/_helpers.ts";

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
    ignored: 0,
  });
  assert.deepEqual(
    parseDenoTestSummary("FAILED | 2 passed | 1 failed | 1 ignored (9ms)"),
    { passed: 2, failed: 1, ignored: 1 },
  );
  assert.equal(parseDenoTestSummary("error: Module not found"), null);
});

Deno.test("sizes, series and versions parse as an admin writes them", () => {
  assert.equal(parseSize("512M"), 512 * 1024 ** 2);
  assert.equal(parseSize("2G"), 2 * 1024 ** 3);
  assert.equal(parseSize("4096"), 4096);
  assert.throws(() => parseSize("lots"), /bad size/);
  assert.equal(parseSeries("6.1"), "6.1");
  assert.equal(parseSeries("6.12-rt"), "6.12-rt");
  assert.equal(parseSeries("newest"), "newest");
  assert.throws(() => parseSeries("5.10"), /unknown kernel series/);
  assert.ok(compareVersions("6.1.0-56-amd64", "6.1.0-9-amd64") > 0);
  assert.ok(compareVersions("6.12.117+deb12-amd64", "6.12.99+deb12-amd64") > 0);
});

Deno.test("guest steps are profiled by kind, and the time table adds them up", () => {
  assert.equal(stepKind("bdsnap restore /dev/vda --session x --yes"), "bdsnap");
  assert.equal(stepKind("mkdir -p /mnt/t && mount -t ext4 /dev/vda /mnt/t"), "mount");
  assert.equal(stepKind("sha256sum /dev/vda"), "sha256");
  assert.equal(stepKind("mkfs.xfs -q -f /dev/vda"), "mkfs");
  assert.equal(stepKind("M=/mnt/t; true"), "other");
  const profile = parseProfile(
    '{"kind":"bdsnap","seconds":3}\n{"kind":"bdsnap","seconds":4}\n{"kind":"sha' +
      '\n{"kind":"sha256","seconds":10}\n',
  );
  assert.deepEqual(profile, {
    bdsnap: { count: 2, seconds: 7 },
    sha256: { count: 1, seconds: 10 },
  });
  const table = timeTable([{
    file: "tests/vm/cow_chain_test.ts",
    series: "6.12",
    tier: "core",
    ok: true,
    bootSeconds: 12,
    totalSeconds: 40,
    profile,
  }], [["unit tests", 20]]);
  const row = table.split("\n").find((l) => l.startsWith("cow_chain"))!;
  // boot 12 + bdsnap 7 + sha256 10 leave 11 s of other time.
  assert.match(row, /^cow_chain\s+6\.12\s+core\s+ok\s+12\s+40\s+7\/2\s+10\/1\s+11$/);
  assert.match(table, /unit tests 20 s/);
});

Deno.test("apt: a failed source is seen even when apt-get update exits 0", () => {
  const out = [
    "Hit:1 http://deb.debian.org/debian bookworm InRelease",
    "Err:2 http://deb.debian.org/debian-security bookworm-security InRelease",
    "  Temporary failure resolving 'deb.debian.org'",
    "W: Failed to fetch http://deb.debian.org/debian-security/dists/bookworm-security/InRelease",
    "W: Some index files failed to download. They have been ignored, or old ones used instead.",
  ].join("\n");
  assert.equal(updateFailures(out).length, 3);
  assert.deepEqual(
    updateFailures("Hit:1 http://x bookworm InRelease\nReading package lists..."),
    [],
  );
});

Deno.test("apt: the lists' age is that of their newest Release file", async () => {
  const dir = await Deno.makeTempDir();
  const saved = Deno.env.get("APT_CONFIG");
  try {
    await Deno.writeTextFile(`${dir}/apt.conf`, `Dir::State::Lists "${dir}/lists/";\n`);
    Deno.env.set("APT_CONFIG", `${dir}/apt.conf`);
    assert.equal(await listsAge(), Infinity, "no lists at all");
    await Deno.mkdir(`${dir}/lists`);
    await Deno.writeTextFile(`${dir}/lists/x_dists_bookworm_InRelease`, "");
    await Deno.writeTextFile(`${dir}/lists/x_dists_bookworm-security_InRelease`, "");
    await Deno.writeTextFile(`${dir}/lists/x_Packages.lz4`, "");
    const now = Date.now();
    await Deno.utime(`${dir}/lists/x_dists_bookworm_InRelease`, now / 1000, now / 1000 - 90000);
    await Deno.utime(
      `${dir}/lists/x_dists_bookworm-security_InRelease`,
      now / 1000,
      now / 1000 - 7200,
    );
    const age = await listsAge(undefined, now);
    assert.ok(Math.abs(age - 7200_000) < 2000, `age ${age}`);
  } finally {
    if (saved === undefined) Deno.env.delete("APT_CONFIG");
    else Deno.env.set("APT_CONFIG", saved);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("harness files: one job per kernel; the quick benchmark on one; reboots rotate in core", () => {
  const k = ["6.1", "6.12", "6.12-rt", "newest"].map((series) => ({ series }));
  const day = (n: number) => new Date(n * 86_400_000 + 3600_000);
  const core = () => "core" as const;
  const full = () => "full" as const;
  const names = (f: string, tier: typeof core | typeof full, n = 0) =>
    harnessKernels(f, k, tier, day(n)).map((x) => x.series);
  assert.deepEqual(names("tests/harness/power_cut_test.ts", core), [
    "6.1",
    "6.12",
    "6.12-rt",
    "newest",
  ]);
  assert.deepEqual(names("tests/harness/bench_quick_test.ts", core), ["newest"]);
  assert.deepEqual([0, 1, 2, 3, 4].map((n) => names("tests/harness/reboot_test.ts", core, n)), [
    ["6.1"],
    ["6.12"],
    ["6.12-rt"],
    ["newest"],
    ["6.1"],
  ]);
  assert.deepEqual(names("tests/harness/reboot_test.ts", full), [
    "6.1",
    "6.12",
    "6.12-rt",
    "newest",
  ]);
  assert.equal(rotatingKernel(["6.12"], day(7)), "6.12");
});

Deno.test("harness files: the install test runs in the full tier only, on each of its kernels", () => {
  const k = ["6.1", "6.12", "6.12-rt", "newest"].map((series) => ({ series }));
  const names = (tierOf: (s: string) => "core" | "full") =>
    harnessKernels("tests/harness/install_test.ts", k, tierOf).map((x) => x.series);
  assert.deepEqual(names(() => "core"), []);
  assert.deepEqual(names(() => "full"), ["6.1", "6.12", "6.12-rt", "newest"]);
  assert.deepEqual(names((s) => s === "6.12-rt" ? "full" : "core"), ["6.12-rt"], "--full-on");
});
