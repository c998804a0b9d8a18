/**
 * Progress bars for long work (restore, export, verify), behind one module
 * of ours so that a later move to another library is a local change. The
 * bar draws on standard error, and only when standard error is a terminal:
 * scripts, logs and `--json` output see nothing of it.
 *
 * @module
 */
import process from "node:process";
import type CliProgress from "cli-progress";
import { formatBytes } from "./units.ts";

/** One step of progress, in bytes. */
export interface ProgressStep {
  /** What is being done (`verify`, `write`, …); a new phase starts a new bar. */
  phase: string;
  /** Bytes done in this phase. */
  done: number;
  /** Bytes to do in this phase. */
  total: number;
}

/** A progress display. */
export interface Progress {
  /** Show a step; safe to call very often. */
  update(step: ProgressStep): void;
  /** Remove the bar (the last one stays on screen, finished). */
  stop(): void;
}

const LABELS: Record<string, string> = {
  verify: "verifying checksums",
  write: "writing",
  readback: "reading back",
  copy: "copying device",
};

/** A display that shows nothing. */
export const silentProgress: Progress = { update() {}, stop() {} };

/** Should a bar be drawn: standard error is a terminal and the user did not ask for quiet. */
export function progressWanted(quiet = false): boolean {
  try {
    return !quiet && Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * A progress bar with phase, percentage, bytes, throughput and ETA, or a
 * silent one when `enabled` is false (default: {@linkcode progressWanted}).
 * The library is loaded only for a bar: scripts and cron never draw one, and
 * loading it is a noticeable part of the CLI's start-up.
 */
export async function progressBar(enabled: boolean = progressWanted()): Promise<Progress> {
  if (!enabled) return silentProgress;
  const cliProgress: typeof CliProgress = (await import("cli-progress")).default;
  let bar: CliProgress.SingleBar | null = null;
  let phase = "";
  let started = 0;
  const payload = (step: ProgressStep) => {
    const secs = (performance.now() - started) / 1000;
    return {
      label: (LABELS[step.phase] ?? step.phase).padEnd(19),
      bytes: `${formatBytes(step.done)} / ${formatBytes(step.total)}`,
      speed: secs > 0.2 ? `${formatBytes(step.done / secs)}/s` : "-",
    };
  };
  return {
    update(step) {
      if (step.phase !== phase || bar === null) {
        bar?.stop();
        phase = step.phase;
        started = performance.now();
        bar = new cliProgress.SingleBar({
          format: "{label} [{bar}] {percentage}% | {bytes} | {speed} | ETA {eta_formatted}",
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 50,
          fps: 10,
        }, cliProgress.Presets.shades_classic);
        bar.start(Math.max(step.total, 1), step.done, payload(step));
        return;
      }
      bar.update(step.done, payload(step));
    },
    stop() {
      bar?.stop();
      bar = null;
      phase = "";
    },
  };
}
