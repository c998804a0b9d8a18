/**
 * `bdsnap prune (--keep N | --older-than DURATION) [DEV] [--dry-run]`:
 * remove old closed sessions from the store.
 *
 * The chain rule decides what may go. The sessions of a device form a chain
 * ordered by mount time; restoring to the state before session k reads
 * sessions k, k+1, …, n. So a retained session needs every *newer* session
 * of its device, and never an older one. Prune therefore removes sessions
 * oldest first, and stops removing in a chain as soon as it keeps a session
 * that can still be restored: everything newer than that session stays.
 *
 * Only `closed` sessions are removed. Open sessions are never touched, nor
 * are failed, damaged, incomplete or interrupted ones (inspect those with
 * `bdsnap verify` and remove them by hand). A kept failed, damaged or
 * incomplete session breaks its chain (no restore can pass through it), so
 * sessions newer than it are again removable when the policy selects them.
 * @module
 */

import { type Command, InvalidArgumentError, Option } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED, EXIT_PERMISSION, EXIT_USAGE } from "./_lib/errors.ts";
import { globals, storeRoot } from "./_lib/context.ts";
import { printJson, println } from "./_lib/io.ts";
import { formatBytes, parseDuration } from "./_lib/units.ts";
import { chainKey, liveSessionIds, readStore, sessionDevice } from "./_lib/store_view.ts";
import { filterByDevice } from "./sessions.ts";
import { compareSessions, type Session } from "../lib/store.ts";

/** What to prune: keep the newest N of each device, or remove those older than a duration. */
export type PrunePolicy = { keep: number } | { olderThanMs: number };

/** Why a session is kept. */
export type KeepReason =
  | "policy"
  | "open"
  | "live"
  | "not-closed"
  | "needed";

/** The decision for every session examined. */
export interface PrunePlan {
  remove: Session[];
  keep: Array<{ session: Session; reason: KeepReason }>;
}

/** The time a session ended (or started, if it never recorded an end), in ms. */
function endMs(s: Session): number {
  const m = s.meta;
  if (m?.endTimeNs) return m.endTimeNs / 1e6;
  if (m?.mountTimeNs) return m.mountTimeNs / 1e6;
  return s.idParts ? s.idParts.timeUs / 1000 : 0;
}

/** A session no restore can pass through. */
function breaksChain(s: Session): boolean {
  return s.state === "failed" || s.state === "damaged" || s.state === "incomplete";
}

/**
 * Decide which sessions to remove. `sessions` may mix devices; each device's
 * chain is handled on its own. `live` holds the ids the module has open
 * (undefined: unknown, so every session whose meta.json says open is kept).
 */
export function planPrune(
  sessions: readonly Session[],
  policy: PrunePolicy,
  now: number = Date.now(),
  live?: ReadonlySet<string>,
): PrunePlan {
  const chains = new Map<string, Session[]>();
  for (const s of sessions) {
    const k = chainKey(s);
    chains.set(k, [...(chains.get(k) ?? []), s]);
  }
  const plan: PrunePlan = { remove: [], keep: [] };
  for (const chain of chains.values()) {
    chain.sort(compareSessions);
    // A kept session whose restore is still possible needs all newer ones.
    let neededByKept = false;
    chain.forEach((s, i) => {
      const selected = "keep" in policy
        ? i < chain.length - policy.keep
        : endMs(s) < now - policy.olderThanMs;
      let reason: KeepReason | null = null;
      if (!selected) reason = "policy";
      else if (s.state === "open") reason = "open";
      else if (live?.has(s.id)) reason = "live";
      else if (s.state !== "closed") reason = "not-closed";
      else if (neededByKept) reason = "needed";
      if (reason === null) {
        plan.remove.push(s);
        return;
      }
      plan.keep.push({ session: s, reason });
      neededByKept = !breaksChain(s);
    });
  }
  plan.remove.sort(compareSessions);
  plan.keep.sort((a, b) => compareSessions(a.session, b.session));
  return plan;
}

/** Parse --keep. */
export function parseKeep(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("not a whole number");
  return Number(value);
}

/** Parse --older-than. */
export function parseOlderThan(value: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile) n += (await Deno.stat(`${dir}/${e.name}`)).size;
    }
  } catch {
    // counted as far as readable
  }
  return n;
}

/** Register `prune`. */
export function register(program: Command): void {
  program
    .command("prune")
    .description(
      "remove old closed sessions, oldest first, never breaking a kept session's restore",
    )
    .argument("[dev]", "only prune the sessions of this device or image file")
    .addOption(
      new Option("--keep <n>", "keep the newest N sessions of each device").argParser(parseKeep),
    )
    .addOption(
      new Option(
        "--older-than <duration>",
        "remove sessions that ended more than DURATION ago (30d, 12h, 1w2d)",
      )
        .argParser(parseOlderThan)
        .conflicts("keep"),
    )
    .option("--dry-run", "show what would be removed, remove nothing")
    .addHelpText(
      "after",
      "\nChain rule: restoring to the state before session k reads sessions k..n of its device,\n" +
        "so a kept session needs every newer one. Prune removes oldest first and keeps everything\n" +
        "newer than a kept restorable session. Open, failed, damaged, incomplete and interrupted\n" +
        "sessions are never removed.",
    )
    .action(async (
      dev: string | undefined,
      o: { keep?: number; olderThan?: number; dryRun?: boolean },
      cmd: Command,
    ) => {
      const opts = globals(cmd);
      if (o.keep === undefined && o.olderThan === undefined) {
        throw new CliError("say what to prune: --keep N or --older-than DURATION", EXIT_USAGE);
      }
      const policy: PrunePolicy = o.keep !== undefined
        ? { keep: o.keep }
        : { olderThanMs: o.olderThan! };
      const root = storeRoot(opts).root;
      const live = liveSessionIds();
      const sessions = filterByDevice(await readStore(root, live), dev);
      const plan = planPrune(sessions, policy, Date.now(), live);
      const removed: Array<{ id: string; device: string; bytes: number }> = [];
      let freed = 0;
      for (const s of plan.remove) {
        const bytes = await dirBytes(s.dir);
        if (!o.dryRun) {
          try {
            await Deno.remove(s.dir, { recursive: true });
          } catch (e) {
            const perm = e instanceof Deno.errors.PermissionDenied;
            throw new CliError(
              `cannot remove ${s.dir}: ${
                perm ? "permission denied (run as root)" : (e as Error).message
              }` +
                (removed.length ? ` (${removed.length} sessions removed before)` : ""),
              perm ? EXIT_PERMISSION : EXIT_FAILED,
            );
          }
        }
        removed.push({ id: s.id, device: sessionDevice(s), bytes });
        freed += bytes;
        if (!opts.json && !opts.quiet) {
          println(`${o.dryRun ? "would remove" : "removed"} ${s.id} (${formatBytes(bytes)})`);
        }
      }
      if (opts.json) {
        printJson({
          store: root,
          dry_run: Boolean(o.dryRun),
          removed,
          kept: plan.keep.map((k) => ({
            id: k.session.id,
            device: sessionDevice(k.session),
            reason: k.reason,
          })),
          freed_bytes: freed,
        });
      } else if (!opts.quiet) {
        println(
          `${o.dryRun ? "would free" : "freed"} ${formatBytes(freed)} ` +
            `(${removed.length} removed, ${plan.keep.length} kept)`,
        );
      }
    });
}
