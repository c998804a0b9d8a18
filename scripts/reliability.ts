/**
 * `deno task test:reliability`: the reliability and security suite
 * (docs/RELIABILITY.md). Each scenario is a module under tests/reliability/
 * that boots VMs (one at a time) and reports runs, passed, data lost and
 * notes. Results go to tests/reliability/results/<date>-<kernel>.json and .md.
 * Exits non-zero on any failed run or any data lost.
 * @module
 */
import { parseArgs } from "node:util";
import { ensureHostTools } from "./vm/host_tools.ts";
import { type Kernel, parseSeries, provisionKernel, SERIES } from "./vm/kernels.ts";
import { buildKmod } from "./vm/kmod.ts";
import { REPO } from "./vm/paths.ts";
import type {
  ReliabilityOptions,
  Scenario,
  ScenarioResult,
} from "../tests/reliability/_scenario.ts";
import { powerCut } from "../tests/reliability/power_cut.ts";
import { storeFaults } from "../tests/reliability/store_faults.ts";
import { hungStore } from "../tests/reliability/hung_store.ts";
import { originVanishes } from "../tests/reliability/origin_vanishes.ts";
import { controlStress } from "../tests/reliability/control_stress.ts";
import { controlFuzz } from "../tests/reliability/control_fuzz.ts";
import { soak } from "../tests/reliability/soak.ts";
import { security } from "../tests/reliability/security.ts";
import { crashPoints } from "../tests/reliability/crash_points.ts";

export const SCENARIOS: Scenario[] = [
  powerCut,
  storeFaults,
  hungStore,
  originVanishes,
  controlStress,
  controlFuzz,
  soak,
  security,
  crashPoints,
];

const USAGE = `usage: deno task test:reliability [options]

  --kernel SERIES     6.1, 6.12, 6.12-rt, newest or debug (time limits x6); repeatable
                      (default: the four series of the matrix)
  --only NAMES        comma-separated subset of: ${SCENARIOS.map((s) => s.name).join(", ")}
  --runs N            rounds of every variant of store_faults, hung_store and origin_vanishes (default 1)
  --cuts N            power cuts per kernel (default 20; N cuts take N+1 boots)
  --fuzz-calls N      calls made by the control fuzzer (default 20000)
  --soak-minutes M    guest minutes of fio verify in the soak (default 20)
  --stress-seconds S  duration of the control stress (default 300)
  --seed N            random seed (default: time based; printed)
  --out DIR           results directory (default tests/reliability/results)
  --keep              keep VM run directories and disk images`;

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}

/** The table of a kernel's results, as Markdown. */
export function markdownTable(results: ScenarioResult[]): string {
  const rows = results.map((r) => [
    r.scenario,
    r.kernel,
    String(r.runs),
    String(r.passed),
    String(r.dataLost),
    r.notes.join("; ").replaceAll("|", "\\|"),
  ]);
  const head = ["scenario", "kernel", "runs", "passed", "data lost", "notes"];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i].length, 60))));
  const line = (cells: string[]) => `| ${cells.map((c, i) => pad(c, w[i])).join(" | ")} |`;
  return [line(head), `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`, ...rows.map(line)].join(
    "\n",
  );
}

function order(name: string): number {
  return SCENARIOS.findIndex((s) => s.name === name);
}

/** Results already written today for a kernel, or none. */
async function readResults(file: string): Promise<ScenarioResult[]> {
  try {
    return JSON.parse(await Deno.readTextFile(file)).results ?? [];
  } catch {
    return [];
  }
}

/** Add one result to tests/reliability/results/<date>-<kernel>.json and .md. */
async function save(
  out: string,
  kernel: Kernel,
  opts: ReliabilityOptions,
  r: ScenarioResult,
): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  const base = `${out}/${date}-${kernel.series}`;
  await Deno.mkdir(out, { recursive: true });
  // Several invocations on one day (e.g. --only power_cut, then the rest) add up in one file.
  const earlier = (await readResults(`${base}.json`)).filter((e) => e.scenario !== r.scenario);
  const all = [...earlier, r].sort((a, b) => order(a.scenario) - order(b.scenario));
  const doc = {
    date,
    kernel: { series: kernel.series, release: kernel.release },
    options: opts,
    host: { cpus: navigator.hardwareConcurrency },
    results: all,
  };
  await Deno.writeTextFile(`${base}.json`, JSON.stringify(doc, null, 2) + "\n");
  const md = `# Reliability suite, ${kernel.release} (${date})\n\n` +
    `Options of the last invocation: ${JSON.stringify(opts)}\n\n${markdownTable(all)}\n`;
  await Deno.writeTextFile(`${base}.md`, md);
}

function failed(r: ScenarioResult): boolean {
  return r.passed !== r.runs || r.dataLost !== 0 || r.runs === 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      kernel: { type: "string", multiple: true },
      only: { type: "string" },
      runs: { type: "string", default: "1" },
      cuts: { type: "string", default: "20" },
      "fuzz-calls": { type: "string", default: "20000" },
      "soak-minutes": { type: "string", default: "20" },
      "stress-seconds": { type: "string", default: "300" },
      seed: { type: "string" },
      out: { type: "string", default: `${REPO}/tests/reliability/results` },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  for (const o of only ?? []) {
    if (!SCENARIOS.some((s) => s.name === o)) {
      console.error(`unknown scenario '${o}'\n${USAGE}`);
      return 2;
    }
  }
  const scenarios = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const opts: ReliabilityOptions = {
    runs: Number(values.runs),
    cuts: Number(values.cuts),
    fuzzCalls: Number(values["fuzz-calls"]),
    soakMinutes: Number(values["soak-minutes"]),
    stressSeconds: Number(values["stress-seconds"]),
    seed: values.seed ? Number(values.seed) : Date.now() % 1_000_000,
    keep: values.keep!,
  };
  console.error(`[reliability] seed ${opts.seed}`);
  const series = (values.kernel ?? [...SERIES]).map(parseSeries);
  await ensureHostTools();

  let bad = 0;
  for (const s of series) {
    const kernel = await provisionKernel(s);
    await buildKmod(kernel);
    const results: ScenarioResult[] = [];
    for (const sc of scenarios) {
      console.error(`\n[reliability] === ${sc.name} [${s}]: ${sc.summary}`);
      let r: ScenarioResult;
      try {
        r = await sc.run(kernel, opts);
      } catch (e) {
        r = {
          scenario: sc.name,
          kernel: s,
          runs: 1,
          passed: 0,
          dataLost: 0,
          notes: [`FAILED: ${e instanceof Error ? e.stack ?? e.message : e}`],
          metrics: {},
          seconds: 0,
          logs: [],
        };
      }
      results.push(r);
      console.error(
        `[reliability] ${sc.name} [${s}]: ${r.passed}/${r.runs} passed, ${r.dataLost} lost, ` +
          `${r.seconds} s${failed(r) ? " — FAILED" : ""}`,
      );
      for (const n of r.notes) console.error(`    ${n}`);
      for (const l of r.logs) console.error(`    logs: ${l}`);
      // Written after every scenario, so an interrupted invocation keeps what it finished.
      await save(values.out!, kernel, opts, r);
    }
    bad += results.filter(failed).length;
    console.log(`\n${markdownTable(results)}\n`);
    console.error(`[reliability] results in ${values.out}/`);
  }
  console.log(bad === 0 ? "reliability: all passed" : `reliability: ${bad} scenario(s) FAILED`);
  return bad === 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`[reliability] ${e instanceof Error ? e.stack : e}`);
    Deno.exit(1);
  }
}
