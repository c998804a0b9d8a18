/**
 * Every crash point (xfstests generic/482's method, applied to the pair
 * origin + store): in one boot, the origin and the store are two dm-linear
 * devices over ranges of ONE dm-log-writes device, so every completed write
 * of either is logged in one global order. A write-heavy session runs
 * (fsync-heavy small files, buffered overwrites, an O_DIRECT file, raw
 * O_DIRECT writes past the filesystem's end); then the guest's own replayer
 * (crash_points.py) applies the log's entries 0..k to a copy of the disk's
 * initial image for every FLUSH/FUA entry and a seeded sample of write
 * boundaries, recovers the crashed store (a copy mounted read-write, so ext4
 * replays its journal), restores the crashed origin from the session with
 * an applier of blocks.map/blocks.dat written from docs/FORMAT.md (and, at
 * every Nth point, with the real `bdsnap restore --target`), and checks
 * that the restored origin equals the pre-mount image byte for byte (sha256
 * for the CLI's), and that the restore is allowed without --accept-gap or
 * --force (interrupted + write-ahead). Guest side: crash_points.sh,
 * crash_points.py.
 *
 * Counts: BDSNAP_CRASH_POINTS (sampled points, default 1000),
 * BDSNAP_CRASH_CLI_EVERY (default 50), BDSNAP_CRASH_WORK_SECONDS (default 8).
 * @module
 */
import type { Kernel } from "../../scripts/vm/kernels.ts";
import {
  boot,
  guestScript,
  MiB,
  type ReliabilityOptions,
  type Scenario,
  type ScenarioResult,
  tally,
} from "./_scenario.ts";

export interface CrashPointsOptions {
  /** Sampled write boundaries (every FLUSH/FUA entry is a point as well). */
  points?: number;
  /** Every Nth point is also restored with the real `bdsnap restore`. */
  cliEvery?: number;
  /** Guest seconds of workload. */
  workSeconds?: number;
  /** VM limit in seconds (before the kernel's slow factor). */
  timeout?: number;
}

function envNumber(name: string): number | undefined {
  const v = Deno.env.get(name);
  return v ? Number(v) : undefined;
}

export async function runCrashPoints(
  kernel: Kernel,
  opts: ReliabilityOptions,
  cp: CrashPointsOptions = {},
): Promise<ScenarioResult> {
  const started = performance.now();
  const points = cp.points ?? envNumber("BDSNAP_CRASH_POINTS") ?? 1000;
  const env = {
    CP_POINTS: String(points),
    CP_SEED: String(opts.seed),
    CP_CLI_EVERY: String(cp.cliEvery ?? envNumber("BDSNAP_CRASH_CLI_EVERY") ?? 50),
    CP_WORK_SECONDS: String(cp.workSeconds ?? envNumber("BDSNAP_CRASH_WORK_SECONDS") ?? 8),
  };
  const b = await boot(kernel, opts, {
    command: guestScript("crash_points.sh"),
    disks: 1,
    diskSize: 1024 * MiB,
    storeSize: 0,
    env,
    // Every FLUSH/FUA entry is checked besides the sampled points (about 900
    // in a run, unknown before the log exists): the floor covers them even
    // on a loaded host, where 150 sampled points once ran out of 900 s.
    timeout: cp.timeout ?? 1800 + points * 3,
  });
  const r = tally("crash_points", kernel, [b], 1, started);
  r.metrics = (b.runs[0]?.metrics ?? {}) as Record<string, unknown>;
  return r;
}

export const crashPoints: Scenario = {
  name: "crash_points",
  summary:
    "one dm-log-writes log of origin + store, replayed to every FLUSH/FUA and 1000 sampled points: each crashed store restores the crashed origin exactly",
  run: (kernel: Kernel, opts: ReliabilityOptions) => runCrashPoints(kernel, opts),
};
