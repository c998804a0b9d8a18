/**
 * What every reliability scenario shares (host side): its options, its
 * result, and one VM boot whose guest reports runs as `@@RUN {json}` lines.
 *
 * A guest script prints one line per run it finished:
 *   @@RUN {"ok": true, "lost": 0, "note": "…", "metrics": {…}}
 * and may print `@@NOTE text` lines. The boot's own verdict (exit status,
 * timeout, the dmesg gate's findings) fails every run of that boot.
 * @module
 */
import { type Kernel, slowFactor } from "../../scripts/vm/kernels.ts";
import { runVmRetryingBoot, type VmOptions, type VmResult } from "../../scripts/vm/qemu.ts";
export { rng } from "../_store_writer.ts";

/** Options of one `deno task test:reliability` invocation. */
export interface ReliabilityOptions {
  /** Rounds of every variant (store_faults, origin_vanishes). */
  runs: number;
  /** Power cuts per kernel. */
  cuts: number;
  /** Calls made by the control fuzzer. */
  fuzzCalls: number;
  soakMinutes: number;
  stressSeconds: number;
  /** Random seed for the whole invocation (printed, so a run can be repeated). */
  seed: number;
  keep: boolean;
}

/** What a scenario reports for one kernel. */
export interface ScenarioResult {
  scenario: string;
  kernel: string;
  runs: number;
  passed: number;
  /** Blocks (or files) whose content was wrong after the scenario: must be 0. */
  dataLost: number;
  notes: string[];
  /** Measurements worth keeping (rates, memory figures, counts). */
  metrics: Record<string, unknown>;
  seconds: number;
  /** Run directories kept for inspection (failed boots). */
  logs: string[];
}

/** A scenario: one module under tests/reliability/. */
export interface Scenario {
  name: string;
  /** One line for the table and the docs. */
  summary: string;
  run(kernel: Kernel, opts: ReliabilityOptions): Promise<ScenarioResult>;
}

/** One run as the guest reported it. */
export interface GuestRun {
  ok: boolean;
  lost?: number;
  note?: string;
  metrics?: Record<string, unknown>;
}

/** A finished boot: the VM's result and the runs its guest reported. */
export interface Boot {
  vm: VmResult;
  runs: GuestRun[];
  notes: string[];
  /** Why the boot itself failed ("" when it did not). */
  problem: string;
  /** Why a first boot failed before the guest's command started, if it did (booted again). */
  bootRetry?: string;
}

/** Directory of the guest-side helpers, as the guest sees it (same path as the host). */
export const GUEST_DIR = new URL(".", import.meta.url).pathname.replace(/\/$/, "");

export function log(msg: string): void {
  console.error(`[reliability] ${msg}`);
}

/** Parse the guest's @@RUN and @@NOTE lines. */
export function parseGuestOutput(output: string): { runs: GuestRun[]; notes: string[] } {
  const runs: GuestRun[] = [];
  const notes: string[] = [];
  for (const line of output.split("\n")) {
    const t = line.trim();
    if (t.startsWith("@@RUN ")) {
      try {
        runs.push(JSON.parse(t.slice(6)));
      } catch {
        runs.push({ ok: false, note: `unparsable run line: ${t.slice(0, 200)}` });
      }
    } else if (t.startsWith("@@NOTE ")) {
      notes.push(t.slice(7));
    }
  }
  return { runs, notes };
}

/** Why a VM run failed, in one line, or "" when it passed. */
export function bootProblem(vm: VmResult, killed = false): string {
  const p: string[] = [];
  if (vm.timedOut) p.push("timed out (hang?)");
  else if (vm.bootHung) p.push("the guest never reached its command (boot hung)");
  else if (!killed && vm.status !== 0) p.push(`guest exited ${vm.status}`);
  for (const f of vm.findings) p.push(`kernel log ${f.kind}: ${f.line}`);
  return p.join("; ");
}

/** Boot once, run a guest script, collect its runs. */
export async function boot(
  kernel: Kernel,
  opts: ReliabilityOptions,
  vm: Omit<VmOptions, "kernel">,
  killed = false,
): Promise<Boot> {
  // Slower kernels (the debug one) get longer limits, in the VM and the guest's own.
  const slow = slowFactor(kernel);
  let bootRetry: string | undefined;
  const r = await runVmRetryingBoot({
    kernel,
    keep: opts.keep,
    ...vm,
    timeout: (vm.timeout ?? 900) * slow,
    env: { ...vm.env, BDSNAP_SLOW: String(slow) },
  }, (why, first) => {
    bootRetry = why;
    log(
      `the guest failed before its command started (${why}); logs in ${first.runDir}; booting again`,
    );
  });
  const { runs, notes } = parseGuestOutput(r.output);
  const problem = bootProblem(r, killed);
  if (problem) {
    log(`boot failed: ${problem}; logs in ${r.runDir}`);
    const tail = r.output.trimEnd().split("\n").slice(-25).join("\n");
    console.error(tail);
  }
  return { vm: r, runs, notes, problem, bootRetry };
}

/**
 * Fold boots into a scenario result: `expected` runs per boot (missing runs
 * count as failed); a failed boot fails all of its runs.
 */
export function tally(
  scenario: string,
  kernel: Kernel,
  boots: Boot[],
  expected: number,
  started: number,
): ScenarioResult {
  const res: ScenarioResult = {
    scenario,
    kernel: kernel.series,
    runs: 0,
    passed: 0,
    dataLost: 0,
    notes: [],
    metrics: {},
    seconds: 0,
    logs: [],
  };
  for (const b of boots) {
    res.runs += Math.max(expected, b.runs.length);
    for (const r of b.runs) {
      res.dataLost += r.lost ?? 0;
      if (r.ok && !b.problem) res.passed += 1;
      if (r.note) res.notes.push(r.ok ? r.note : `FAILED: ${r.note}`);
      for (const [k, v] of Object.entries(r.metrics ?? {})) {
        const list = (res.metrics[k] ??= []) as unknown[];
        list.push(v);
      }
    }
    if (b.runs.length < expected) {
      res.notes.push(`FAILED: ${expected - b.runs.length} run(s) not reported by the guest`);
    }
    if (b.problem) {
      res.notes.push(`FAILED boot: ${b.problem}`);
      res.logs.push(b.vm.runDir);
    }
    res.notes.push(...b.notes);
  }
  res.seconds = Math.round((performance.now() - started) / 1000);
  return res;
}

/** Shell-quote one word for the guest command line. */
export function q(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The guest command that runs a helper script of this directory. */
export function guestScript(file: string, ...args: string[]): string {
  return `bash ${q(`${GUEST_DIR}/${file}`)} ${args.map(q).join(" ")}`;
}

export const MiB = 1024 ** 2;

/** A scenario that is one guest script, booted `rounds` times. */
export interface GuestScenarioSpec {
  name: string;
  summary: string;
  /** Helper script in this directory and its arguments. */
  script: (opts: ReliabilityOptions) => string[];
  vm: (opts: ReliabilityOptions) => Omit<VmOptions, "kernel" | "command">;
  /** @@RUN lines each boot must report. */
  expected: number;
  /** Boots (default 1). */
  rounds?: (opts: ReliabilityOptions) => number;
  /** Adjust the folded result (extra checks, counts). */
  finish?: (r: ScenarioResult, boots: Boot[], opts: ReliabilityOptions) => Promise<void> | void;
}

export function guestScenario(spec: GuestScenarioSpec): Scenario {
  return {
    name: spec.name,
    summary: spec.summary,
    async run(kernel: Kernel, opts: ReliabilityOptions) {
      const started = performance.now();
      const boots: Boot[] = [];
      const [file, ...args] = spec.script(opts);
      for (let i = 0; i < (spec.rounds?.(opts) ?? 1); i++) {
        boots.push(
          await boot(kernel, opts, { command: guestScript(file, ...args), ...spec.vm(opts) }),
        );
      }
      const r = tally(spec.name, kernel, boots, spec.expected, started);
      await spec.finish?.(r, boots, opts);
      return r;
    },
  };
}
