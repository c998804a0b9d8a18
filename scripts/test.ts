/**
 * `deno task test`: unit tests on the host, then the VM suite on every kernel
 * of the matrix, one boot per test file and kernel, two VMs at a time; the
 * harness tests (which boot VMs themselves) run as jobs of the same pool, one per file and kernel.
 * Ends with a time table and "N passed, N failed, N skipped", and exits
 * non-zero on any failure.
 *
 *   deno task test [--kernel 6.1|6.12|6.12-rt|newest|debug]… [--tier core|full]
 *                  [--full-on SERIES] [--only SUBSTRING[,…]] [--jobs N]
 *                  [--skip-unit] [--skip-vm]
 *
 * Tiers, so that the suite fits CI's time on every kernel of the matrix:
 * `deno task test` runs the core tier (the files' essential tests) on each
 * of the four series; `--full-on SERIES` adds the full tier on one of them,
 * and `--tier full` (test:full) runs everything everywhere. A test file's
 * `tier=full` directive keeps the whole file to the full tier; inside a
 * file, `fullTierOnly` (tests/vm/_helpers.ts) marks single tests.
 *
 * The debug kernel (KASAN, lockdep, kmemleak…) is never a default; under
 * TCG it runs several times slower, so its VM timeouts are multiplied.
 *
 * A VM test file may start with a directive line for its VM, e.g.
 *   // vm: disks=3 disk-size=256M store-size=64M timeout=600 memory=2048 tier=full
 * @module
 */
import { parseArgs } from "node:util";
import { ensureHostTools } from "./vm/host_tools.ts";
import { type Kernel, parseSeries, provisionKernel, SERIES, slowFactor } from "./vm/kernels.ts";
import { buildKmod } from "./vm/kmod.ts";
import { parseSize, runVmRetryingBoot, type VmOptions } from "./vm/qemu.ts";
import { REPO } from "./vm/paths.ts";
import { type FileTime, loadTimes, saveTimes, timeKey, timeTable } from "./test_times.ts";

type Tier = "core" | "full";

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}

const tally: Tally = { passed: 0, failed: 0, skipped: 0, failures: [] };
const times: FileTime[] = [];

/** Parse deno test's closing line: "ok | 3 passed | 0 failed | 2 ignored (2s)". */
export function parseDenoTestSummary(
  out: string,
): { passed: number; failed: number; ignored: number } | null {
  const lines = out.split("\n").filter((l) => /\d+ passed \| \d+ failed/.test(l));
  const last = lines.at(-1);
  if (!last) return null;
  const m = /(\d+) passed \| (\d+) failed/.exec(last)!;
  const ignored = Number(/(\d+) ignored/.exec(last)?.[1] ?? 0);
  return { passed: Number(m[1]), failed: Number(m[2]), ignored };
}

function record(name: string, out: string, ok: boolean, extra: string[] = []): void {
  const s = parseDenoTestSummary(out);
  if (s) {
    tally.passed += s.passed;
    tally.failed += s.failed;
    tally.skipped += s.ignored;
    if (s.failed > 0) tally.failures.push(name);
  }
  if (!s || (!ok && s.failed === 0)) {
    // Crashed, timed out, or the kernel log failed the run: one more failure.
    tally.failed += 1;
    tally.failures.push(`${name}${extra.length ? `: ${extra.join("; ")}` : ""}`);
  }
}

async function denoTest(paths: string[], env: Record<string, string> = {}): Promise<{
  out: string;
  ok: boolean;
}> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--quiet", ...paths],
    cwd: REPO,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [o, e, st] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.status,
  ]);
  const out = o + e;
  console.log(out.trimEnd());
  return { out, ok: st.success };
}

async function listTests(dir: string, only?: string): Promise<string[]> {
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(`${REPO}/${dir}`)) {
      const wanted = !only || only.split(",").some((o) => e.name.includes(o));
      if (e.isFile && e.name.endsWith("_test.ts") && wanted) {
        files.push(`${dir}/${e.name}`);
      }
    }
  } catch {
    // no such directory yet
  }
  return files.sort();
}

/** Read the `// vm:` directive of a VM test file. */
async function vmDirective(file: string): Promise<Partial<VmOptions> & { tier?: Tier }> {
  const head = (await Deno.readTextFile(`${REPO}/${file}`)).split("\n").slice(0, 5);
  const line = head.find((l) => l.startsWith("// vm:"));
  const o: Partial<VmOptions> & { tier?: Tier } = {};
  if (!line) return o;
  for (const kv of line.slice(6).trim().split(/\s+/)) {
    const [k, v] = kv.split("=");
    if (k === "disks") o.disks = Number(v);
    else if (k === "disk-size") o.diskSize = parseSize(v);
    else if (k === "store-size") o.storeSize = parseSize(v);
    else if (k === "timeout") o.timeout = Number(v);
    else if (k === "memory") o.memory = Number(v);
    else if (k === "cpus") o.cpus = Number(v);
    else if (k === "tier" && (v === "core" || v === "full")) o.tier = v;
    else throw new Error(`${file}: unknown vm directive '${k}'`);
  }
  return o;
}

async function runVmFile(k: Kernel, file: string, tier: Tier): Promise<void> {
  const name = `${file} [${k.series}]`;
  console.log(`\n=== ${name} (${tier} tier)`);
  const { tier: _fileTier, ...vm } = await vmDirective(file);
  vm.timeout = (vm.timeout ?? 900) * slowFactor(k);
  const r = await runVmRetryingBoot(
    {
      kernel: k,
      // Type-checked once on the host (typeCheckVmTests): checking again in
      // every guest cost about 15 s per file under emulation.
      command: `"$BDSNAP_DENO" test -A --quiet --no-check ${file}`,
      ...vm,
      env: { BDSNAP_TIER: tier },
    },
    (why, first) =>
      console.log(
        `[test] ${name}: the guest failed before the command started (${why}); ` +
          `logs: ${first.runDir}; booting again`,
      ),
  );
  console.log(r.output.trimEnd());
  const extra: string[] = [];
  if (r.timedOut) extra.push("timed out");
  for (const f of r.findings) extra.push(`kernel log ${f.kind}: ${f.line}`);
  if (r.status === null && !r.timedOut) extra.push("guest gave no exit status");
  for (const x of extra) console.log(`[test] ${name}: ${x}`);
  console.log(
    `[test] ${name}: ${r.ok ? "ok" : "FAILED"} (boot ${r.bootSeconds?.toFixed(1) ?? "-"} s, ` +
      `total ${r.totalSeconds.toFixed(1)} s, ${r.accel}, ${k.release})`,
  );
  if (!r.ok) console.log(`[test] logs: ${r.runDir}`);
  record(`${file} [${k.series} ${k.release}]`, r.output, r.ok, extra);
  times.push({
    file,
    series: k.series,
    tier,
    ok: r.ok,
    bootSeconds: r.bootSeconds,
    totalSeconds: r.totalSeconds,
    profile: r.profile,
  });
}

/**
 * Type-check the VM and harness tests once, on the host, because the guests
 * run them with --no-check. A type error fails the run like a failed test.
 */
async function typeCheckVmTests(only?: string): Promise<void> {
  const files = [
    ...await listTests("tests/vm", only),
    ...await listTests("tests/harness", only),
  ];
  if (files.length === 0) return;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", ...files],
    cwd: REPO,
    env: { NO_COLOR: "1" },
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    console.log(new TextDecoder().decode(stderr).trimEnd());
    tally.failed += 1;
    tally.failures.push("type check of the VM tests");
  }
}

/** Seconds a harness test file takes on one kernel, before the memo knows (a fresh clone). */
const HARNESS_EXPECTED: Record<string, number> = {
  // High enough to start among the long VM files (whose expected times in a
  // fresh clone are their directives' limits), not at the tail of the run.
  "power_cut_test.ts": 1000,
  "reboot_test.ts": 1000,
  "install_test.ts": 1800,
  "bench_quick_test.ts": 950,
};

function baseName(f: string): string {
  return f.slice(f.lastIndexOf("/") + 1);
}

/** The kernel that takes today's turn: rotates through the matrix by UTC day. */
export function rotatingKernel<T>(series: readonly T[], now = new Date()): T {
  const day = Math.floor(now.getTime() / 86_400_000);
  return series[day % series.length];
}

/**
 * The kernels a harness test file boots, one job each, so that the pool
 * spreads them: the benchmark's quick run boots one (it proves the
 * benchmark runs, not a kernel); the reboot test, three boots long, every
 * kernel in the full tier and one a day (rotating) in the core tier; the
 * install test (about 20 minutes of a slot under TCG, most of it dpkg
 * unpacking kernel headers and DKMS compiling) only on the kernels of the
 * full tier: the core tier's 45-minute budget has no room for it;
 * everything else every kernel.
 */
export function harnessKernels<T extends { series: string }>(
  file: string,
  kernels: readonly T[],
  tierOf: (series: string) => Tier,
  now = new Date(),
): T[] {
  if (kernels.length === 0) return [];
  const name = baseName(file);
  if (name === "bench_quick_test.ts") {
    return [kernels.find((k) => tierOf(k.series) === "full") ?? kernels.at(-1)!];
  }
  if (name === "reboot_test.ts" && kernels.some((k) => tierOf(k.series) === "core")) {
    return [rotatingKernel(kernels, now)];
  }
  if (name === "install_test.ts") return kernels.filter((k) => tierOf(k.series) === "full");
  return [...kernels];
}

/** One unit of work for the VM pool, with the seconds it is expected to take. */
interface Job {
  name: string;
  expected: number;
  run(): Promise<void>;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kernel: { type: "string", multiple: true },
      tier: { type: "string" },
      "full-on": { type: "string" },
      only: { type: "string" },
      jobs: { type: "string", default: "2" },
      "skip-unit": { type: "boolean", default: false },
      "skip-vm": { type: "boolean", default: false },
    },
  });
  const series = (values.kernel ?? [...SERIES]).map(parseSeries);
  if (values.tier !== undefined && values.tier !== "core" && values.tier !== "full") {
    throw new Error(`--tier ${values.tier}: use core or full`);
  }
  const fullOn = values["full-on"];
  if (fullOn !== undefined && !series.includes(fullOn as typeof series[number])) {
    throw new Error(
      `--full-on ${fullOn}: not among the kernels of this run (${series.join(", ")})`,
    );
  }
  const tierOf = (s: string): Tier =>
    (values.tier as Tier | undefined) ?? (s === fullOn ? "full" : "core");
  const started = performance.now();
  const phases: [string, number][] = [];
  const phase = async (name: string, f: () => Promise<void>) => {
    const t = performance.now();
    await f();
    phases.push([name, (performance.now() - t) / 1000]);
  };
  console.log(`[test] kernels: ${series.map((s) => `${s} (${tierOf(s)} tier)`).join(", ")}`);

  if (!values["skip-unit"]) {
    await phase("unit tests", async () => {
      console.log("=== unit tests (host)");
      const files = await listTests("tests/unit", values.only);
      if (files.length > 0) {
        const r = await denoTest(files);
        record("unit tests", r.out, r.ok);
      }
    });
  }

  if (!values["skip-vm"]) {
    const kernels: Kernel[] = [];
    await phase("host tools, kernels and builds", async () => {
      await ensureHostTools();
      for (const s of series) {
        const k = await provisionKernel(s);
        try {
          await buildKmod(k);
        } catch (e) {
          console.log(String(e instanceof Error ? e.message : e));
          tally.failed += 1;
          tally.failures.push(`kmod build [${s} ${k.release}]`);
          continue;
        }
        kernels.push(k);
      }
    });

    await phase("type check of the VM tests", () => typeCheckVmTests(values.only));
    const memo = await loadTimes();
    const jobs: Job[] = [];
    for (const f of await listTests("tests/harness", values.only)) {
      for (const k of harnessKernels(f, kernels, tierOf)) {
        const name = `${f} [${k.series}]`;
        jobs.push({
          name,
          expected: memo[timeKey(f, k.series, "host")] ?? HARNESS_EXPECTED[baseName(f)] ?? 300,
          run: async () => {
            const t = performance.now();
            console.log(`\n=== ${name} (host, booting ${k.release})`);
            const r = await denoTest([f], {
              BDSNAP_TEST_KERNELS: k.series,
              BDSNAP_BENCH_KERNEL: k.series,
              // A cut costs about 80 s of a VM slot per kernel: one in the core tier.
              BDSNAP_POWER_CUTS: tierOf(k.series) === "full" ? "2" : "1",
            });
            record(`${f} [${k.series} ${k.release}]`, r.out, r.ok);
            const totalSeconds = (performance.now() - t) / 1000;
            times.push({
              file: f,
              series: k.series,
              tier: "host",
              ok: r.ok,
              bootSeconds: null,
              totalSeconds,
              profile: {},
            });
          },
        });
      }
    }
    const skippedFiles: string[] = [];
    for (const k of kernels) {
      for (const f of await listTests("tests/vm", values.only)) {
        const tier = tierOf(k.series);
        const d = await vmDirective(f);
        if (d.tier === "full" && tier !== "full") {
          skippedFiles.push(`${f} [${k.series}]`);
          continue;
        }
        jobs.push({
          name: `${f} [${k.series}]`,
          expected: memo[timeKey(f, k.series, tier)] ?? d.timeout ?? 900,
          run: () => runVmFile(k, f, tier),
        });
      }
    }
    if (skippedFiles.length > 0) {
      console.log(`[test] full tier only, not run here: ${skippedFiles.join(", ")}`);
    }
    // Longest first: the run ends soonest when no long file starts last.
    jobs.sort((a, b) => b.expected - a.expected);
    const t = performance.now();
    await Promise.all(
      Array.from({ length: Math.max(1, Number(values.jobs)) }, async () => {
        for (let job = jobs.shift(); job; job = jobs.shift()) await job.run();
      }),
    );
    phases.push(["VM pool (wall)", (performance.now() - t) / 1000]);
    await saveTimes(times);
  }

  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  if (times.length > 0) console.log("\n" + timeTable(times, phases));
  console.log(`\n[test] finished in ${minutes} min`);
  for (const f of tally.failures) console.log(`[test] failed: ${f}`);
  console.log(`${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  return tally.failed === 0 && tally.passed > 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`[test] ${e instanceof Error ? e.stack : e}`);
    console.log(`${tally.passed} passed, ${tally.failed + 1} failed, ${tally.skipped} skipped`);
    Deno.exit(1);
  }
}
