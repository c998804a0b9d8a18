/**
 * `deno task test`: unit tests on the host, harness tests (which boot VMs
 * themselves), then every VM test file in its own boot on each kernel.
 * Ends with "N passed, N failed" and exits non-zero on any failure.
 *
 *   deno task test [--kernel 6.1|6.12|debug]… [--only SUBSTRING[,…]] [--jobs N] [--skip-unit]
 *
 * The debug kernel (KASAN, lockdep, kmemleak…) is never a default; under
 * TCG it runs several times slower, so its VM timeouts are multiplied.
 *
 * A VM test file may start with a directive line for its VM, e.g.
 *   // vm: disks=3 disk-size=256M store-size=64M timeout=600 memory=2048
 * @module
 */
import { parseArgs } from "node:util";
import { ensureHostTools } from "./vm/host_tools.ts";
import { type Kernel, parseSeries, provisionKernel, SERIES, slowFactor } from "./vm/kernels.ts";
import { buildKmod } from "./vm/kmod.ts";
import { parseSize, runVmRetryingBoot, type VmOptions } from "./vm/qemu.ts";
import { REPO } from "./vm/paths.ts";

interface Tally {
  passed: number;
  failed: number;
  failures: string[];
}

const tally: Tally = { passed: 0, failed: 0, failures: [] };

/** Parse deno test's closing line: "ok | 3 passed | 0 failed (2s)". */
export function parseDenoTestSummary(out: string): { passed: number; failed: number } | null {
  const lines = out.split("\n").filter((l) => /\d+ passed \| \d+ failed/.test(l));
  const last = lines.at(-1);
  if (!last) return null;
  const m = /(\d+) passed \| (\d+) failed/.exec(last)!;
  return { passed: Number(m[1]), failed: Number(m[2]) };
}

function record(name: string, out: string, ok: boolean, extra: string[] = []): void {
  const s = parseDenoTestSummary(out);
  if (s) {
    tally.passed += s.passed;
    tally.failed += s.failed;
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
async function vmDirective(file: string): Promise<Partial<VmOptions>> {
  const head = (await Deno.readTextFile(`${REPO}/${file}`)).split("\n").slice(0, 5);
  const line = head.find((l) => l.startsWith("// vm:"));
  const o: Partial<VmOptions> = {};
  if (!line) return o;
  for (const kv of line.slice(6).trim().split(/\s+/)) {
    const [k, v] = kv.split("=");
    if (k === "disks") o.disks = Number(v);
    else if (k === "disk-size") o.diskSize = parseSize(v);
    else if (k === "store-size") o.storeSize = parseSize(v);
    else if (k === "timeout") o.timeout = Number(v);
    else if (k === "memory") o.memory = Number(v);
    else if (k === "cpus") o.cpus = Number(v);
    else throw new Error(`${file}: unknown vm directive '${k}'`);
  }
  return o;
}

async function runVmFile(k: Kernel, file: string): Promise<void> {
  const name = `${file} [${k.series}]`;
  console.log(`\n=== ${name}`);
  const vm = await vmDirective(file);
  vm.timeout = (vm.timeout ?? 900) * slowFactor(k);
  const r = await runVmRetryingBoot(
    { kernel: k, command: `"$BDSNAP_DENO" test -A --quiet ${file}`, ...vm },
    (why, first) =>
      console.log(
        `[test] ${name}: the guest failed before the command started (${why}); ` +
          `logs: ${first.runDir}; booting again, once`,
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
      `total ${r.totalSeconds.toFixed(1)} s, ${r.accel})`,
  );
  if (!r.ok) console.log(`[test] logs: ${r.runDir}`);
  record(name, r.output, r.ok, extra);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kernel: { type: "string", multiple: true },
      only: { type: "string" },
      jobs: { type: "string", default: "2" },
      "skip-unit": { type: "boolean", default: false },
      "skip-vm": { type: "boolean", default: false },
    },
  });
  const series = (values.kernel ?? [...SERIES]).map(parseSeries);
  const started = performance.now();

  if (!values["skip-unit"]) {
    console.log("=== unit tests (host)");
    const files = await listTests("tests/unit", values.only);
    if (files.length > 0) {
      const r = await denoTest(files);
      record("unit tests", r.out, r.ok);
    }
  }

  if (!values["skip-vm"]) {
    await ensureHostTools();
    const kernels: Kernel[] = [];
    for (const s of series) {
      const k = await provisionKernel(s);
      try {
        await buildKmod(k);
      } catch (e) {
        console.log(String(e instanceof Error ? e.message : e));
        tally.failed += 1;
        tally.failures.push(`kmod build [${s}]`);
        continue;
      }
      kernels.push(k);
    }

    const harness = await listTests("tests/harness", values.only);
    if (harness.length > 0 && kernels.length > 0) {
      console.log(`\n=== harness tests (host, booting ${kernels.map((k) => k.series).join(", ")})`);
      const r = await denoTest(harness, {
        BDSNAP_TEST_KERNELS: kernels.map((k) => k.series).join(","),
      });
      record("harness tests", r.out, r.ok);
    }

    const files = await listTests("tests/vm", values.only);
    const queue = kernels.flatMap((k) => files.map((f) => ({ k, f })));
    const jobs = Math.max(1, Number(values.jobs));
    await Promise.all(
      Array.from({ length: jobs }, async () => {
        for (let item = queue.shift(); item; item = queue.shift()) {
          await runVmFile(item.k, item.f);
        }
      }),
    );
  }

  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  console.log(`\n[test] finished in ${minutes} min`);
  for (const f of tally.failures) console.log(`[test] failed: ${f}`);
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  return tally.failed === 0 && tally.passed > 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`[test] ${e instanceof Error ? e.stack : e}`);
    console.log(`${tally.passed} passed, ${tally.failed + 1} failed`);
    Deno.exit(1);
  }
}
