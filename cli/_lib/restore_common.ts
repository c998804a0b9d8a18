/**
 * What `restore`, `export` and `verify` share: the dependencies on the
 * running module (injectable for tests), the device a user names, the plan
 * in words and in JSON, and the terminal check.
 * @module
 */

import { CliError, EXIT_FAILED } from "./errors.ts";
import { liveSessionIds, sessionDevice, storeError } from "./store_view.ts";
import { formatBytes, formatNs, isoFromNs } from "./units.ts";
import { eprintln } from "./io.ts";
import { type GlobalOptions, warn } from "./context.ts";
import type { TargetInfo } from "../../lib/target.ts";
import { RestoreError } from "../../lib/errors.ts";
import { type Plan, type PlanOptions, planRestore, restorability } from "../../lib/plan.ts";
import { compareSessions, type Session } from "../../lib/store.ts";
import * as control from "../../ffi/control.ts";

/**
 * What the restore commands need from the running system. Every field has a
 * default that asks the kernel module; tests inject their own.
 */
export interface RestoreDeps {
  /**
   * Is this target activated for snapshots? Restore refuses then (we chose:
   * restore requires the device to be deactivated, so that the restore's
   * writes are neither a session nor "writes outside a session").
   */
  isActivated?: (path: string, info: TargetInfo) => boolean | Promise<boolean>;
  /** Ids of the sessions the module has open now (undefined: cannot tell). */
  liveSessions?: () => Set<string> | undefined;
  /** Can we prompt (standard input and standard error are terminals)? */
  interactive?: () => boolean;
}

/** Ask the module whether `path` (or the device it is) is activated. */
export async function moduleIsActivated(path: string, info: TargetInfo): Promise<boolean> {
  if (!control.isLoaded()) return false;
  let devices: control.DeviceInfo[];
  try {
    devices = control.list();
  } catch (e) {
    throw new CliError(
      `cannot ask the module whether ${path} is activated (${
        e instanceof Error ? e.message : e
      }); restore needs root`,
      EXIT_FAILED,
    );
  }
  for (const d of devices) {
    if (d.name === path || d.name === info.realPath) return true;
    if (
      info.dev !== null && (d.major !== 0 || d.minor !== 0) && `${d.major}:${d.minor}` === info.dev
    ) {
      return true;
    }
    const real = await Deno.realPath(d.name).catch(() => null);
    if (real === info.realPath) return true;
  }
  return false;
}

/** Standard input and standard error are terminals. */
export function stdioInteractive(): boolean {
  try {
    return Deno.stdin.isTerminal() && Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** The dependencies with defaults filled in. */
export function withDefaults(deps: RestoreDeps = {}): Required<RestoreDeps> {
  return {
    isActivated: deps.isActivated ?? moduleIsActivated,
    liveSessions: deps.liveSessions ?? liveSessionIds,
    interactive: deps.interactive ?? stdioInteractive,
  };
}

/** The device path as the sessions recorded it (cli/_lib/device_path.ts). */
export { resolveDevice } from "./device_path.ts";

/** Run `fn`, turning a RestoreError into the CLI's one-line error. */
export async function cli<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw storeError(e);
  }
}

/**
 * The oldest session of `device` after `id` that restores exactly, if any:
 * the way forward from a refusal.
 */
export function exactAfter(
  sessions: readonly Session[],
  id: string,
  device: string,
): Session | null {
  const k = sessions.find((s) => s.id === id);
  if (k === undefined) return null;
  const later = sessions
    .filter((s) => s.meta?.device === device && compareSessions(s, k) > 0)
    .sort(compareSessions);
  return later.find((s) => restorability(sessions, s.id).kind === "exact") ?? null;
}

/** What an inexact restore leaves, in the words every message uses. */
export const INEXACT = "the device will then hold a mix of its pre-mount blocks and blocks " +
  "written after that mount (where the chain has gaps), not the state before the mount";

/** The refusal in words, with the next step that works. */
export function refusalAdvice(
  e: RestoreError,
  sessions: readonly Session[],
  id: string,
  device: string | undefined,
): string {
  const dev = device ?? sessions.find((s) => s.id === id)?.meta?.device;
  const next = dev === undefined ? null : exactAfter(sessions, id, dev);
  const instead = next === null
    ? ""
    : `; ${next.id} is the oldest session after it that restores exactly`;
  if (e.acceptable) {
    return `${e.message}. To restore anyway, knowing that ${INEXACT}, pass --accept-gap${instead}`;
  }
  if (e.code === "not-found" || e.code === "invalid") return e.message;
  return e.message + instead;
}

/**
 * Plan a restore (or export), turning a refusal into the CLI's error with
 * the way forward: `--accept-gap` for a gap, a newer session otherwise.
 */
export function planForCli(
  sessions: readonly Session[],
  id: string,
  options: PlanOptions,
): Plan {
  try {
    return planRestore(sessions, id, options);
  } catch (e) {
    if (!(e instanceof RestoreError)) throw e;
    throw new CliError(refusalAdvice(e, sessions, id, options.device), EXIT_FAILED, { cause: e });
  }
}

/**
 * The plan's warnings on stderr. What makes an accepted restore inexact is
 * said even with --quiet: nobody must take an inexact restore for an exact one.
 */
export function reportWarnings(opts: GlobalOptions, plan: Plan): void {
  const gaps = new Set(plan.gaps.map((g) => g.message));
  for (const g of gaps) eprintln(`bdsnap: WARNING: not exact (--accept-gap): ${g}`);
  if (gaps.size > 0) eprintln(`bdsnap: WARNING: ${INEXACT}`);
  for (const w of plan.warnings) if (!gaps.has(w)) warn(opts, w);
}

/** The stable JSON shape of a plan (docs/CLI.md, "Restore commands"). */
export function planJson(plan: Plan) {
  return {
    device: plan.device,
    kind: plan.kind,
    size: plan.deviceSize,
    session: plan.target.id,
    session_start: plan.target.meta ? isoFromNs(plan.target.meta.mountTimeNs) : null,
    chunk_size: plan.chunkSize,
    chunks: plan.chunks,
    bytes: plan.bytes,
    extents: plan.extents.length,
    sessions: plan.sessions.map((s, i) => ({
      id: s.id,
      state: s.state,
      durability: s.durability,
      bytes_used: plan.usage[i].bytes,
    })),
    warnings: plan.warnings,
    exact: plan.gaps.length === 0,
    gaps: plan.gaps.map((g) => ({ session: g.session, code: g.code, message: g.message })),
  };
}

/**
 * The plan for people: what will be written where, from which sessions.
 * `renamed`: the recorded device is now at `target` (same identity).
 */
export function planLines(plan: Plan, target: string, renamed = false): string[] {
  const when = plan.target.meta ? formatNs(plan.target.meta.mountTimeNs) : "?";
  const size = `${plan.kind}, ${formatBytes(plan.deviceSize)}`;
  const lines = [
    ...(renamed
      ? [`device:   ${target} (${size}; recorded as ${plan.device}, ${plan.identity})`]
      : [
        `device:   ${plan.device} (${size})`,
        ...(target !== plan.device ? [`target:   ${target}`] : []),
      ]),
    `state:    as before the mount of ${when} (session ${plan.target.id})`,
    `writes:   ${plan.chunks} chunks, ${formatBytes(plan.bytes)} in ${plan.extents.length} extents`,
    `result:   ${guarantee(plan)}`,
    `sessions: ${plan.sessions.length} (chain rule: each chunk from the earliest session that saved it)`,
  ];
  plan.sessions.forEach((s, i) => {
    const t = s.meta ? formatNs(s.meta.mountTimeNs) : "?";
    lines.push(
      `  ${s.id}  ${t}  ${s.state}, ${s.durability}  ${formatBytes(plan.usage[i].bytes)} used`,
    );
  });
  return lines;
}

/** The guarantee a plan gives, and what it rests on. */
export function guarantee(plan: Plan): string {
  if (plan.gaps.length > 0) {
    return `NOT exact (--accept-gap: ${plan.gaps.length} gap(s), see the warnings)`;
  }
  const crashed = plan.sessions.filter((s) => s.state === "interrupted").length;
  return crashed === 0
    ? "exact (every session of the chain ended cleanly)"
    : `exact (${crashed} session(s) cut by a crash, but write-ahead: complete up to their ` +
      `last record)`;
}

/** Devices in the store (by recorded path), each with its sessions oldest first. */
export function devicesInStore(sessions: readonly Session[]): Map<string, Session[]> {
  const out = new Map<string, Session[]>();
  for (const s of sessions) {
    const d = sessionDevice(s);
    out.set(d, [...(out.get(d) ?? []), s]);
  }
  return out;
}
