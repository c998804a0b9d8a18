/**
 * `bdsnap prune [--keep N] [--older-than DURATION] [--max-size SIZE] [DEV]
 * [--dry-run]`: remove old sessions from the store without losing a restore.
 *
 * The decision is lib/retention.ts's (it asks the restore planner which
 * sessions are restore points); this module parses the options, measures
 * the sessions, removes them and reports why each other session stays.
 * @module
 */

import { type Command, InvalidArgumentError, Option } from "./_lib/commander.ts";
import { heldSessions } from "./_lib/views.ts";
import { CliError, EXIT_FAILED, EXIT_PERMISSION, EXIT_USAGE } from "./_lib/errors.ts";
import { configDir, type GlobalOptions, globals, storeRoot } from "./_lib/context.ts";
import { absolutePath } from "./_lib/activation.ts";
import { audited, type AuditRecord } from "./_lib/audit.ts";
import { printJson, println } from "./_lib/io.ts";
import { formatBytes, parseDuration, parseSize } from "./_lib/units.ts";
import { liveSessionIds, readStore, sessionDevice } from "./_lib/store_view.ts";
import { sessionsOfDevice } from "./_lib/device_path.ts";
import { configPath, readConfig, type RetentionPolicy as ConfigRetention } from "../lib/config.ts";
import { planRetention, type RetentionPolicy } from "../lib/retention.ts";
import type { Session } from "../lib/store.ts";

/** Parse --keep. */
export function parseKeep(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("not a whole number");
  return Number(value);
}

/** Wrap a parser that throws SyntaxError as a commander argument parser. */
function argParser(parse: (v: string) => number): (v: string) => number {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

/** Parse --older-than. */
export const parseOlderThan: (value: string) => number = argParser(parseDuration);

/** Parse --max-size. */
export const parseMaxSize: (value: string) => number = argParser(parseSize);

/**
 * The retention policy of the configuration file (lib/config.ts), for a
 * prune given none on its command line; a usage error when it has none.
 */
async function configuredPolicy(): Promise<PruneOptions> {
  const dir = configDir();
  let r: ConfigRetention | undefined;
  try {
    r = (await readConfig(dir)).retention;
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT_FAILED);
  }
  if (r === undefined || Object.keys(r).length === 0) {
    throw new CliError(
      "say what to prune: --keep N, --older-than DURATION or --max-size SIZE, or set " +
        `"retention" in ${configPath(dir)}`,
      EXIT_USAGE,
    );
  }
  const where = (key: string) => `${configPath(dir)}: retention.${key}`;
  const parse = (key: string, f: (v: string) => number, v: string) => {
    try {
      return f(v);
    } catch (e) {
      throw new CliError(`${where(key)}: ${(e as Error).message}`, EXIT_FAILED);
    }
  };
  return {
    keep: r.keep,
    olderThan: r.older_than === undefined
      ? undefined
      : parse("older_than", parseDuration, r.older_than),
    maxSize: r.max_size === undefined ? undefined : parse("max_size", parseSize, r.max_size),
  };
}

/** Bytes of the files in a session directory (as far as readable). */
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

async function measure(sessions: readonly Session[]): Promise<Map<string, number>> {
  const sizes = await Promise.all(sessions.map((s) => dirBytes(s.dir)));
  return new Map(sessions.map((s, i) => [s.id, sizes[i]]));
}

async function removeSession(s: Session, removedBefore: number): Promise<void> {
  try {
    await Deno.remove(s.dir, { recursive: true });
  } catch (e) {
    const perm = e instanceof Deno.errors.PermissionDenied;
    throw new CliError(
      `cannot remove ${s.dir}: ${perm ? "permission denied (run as root)" : (e as Error).message}` +
        (removedBefore ? ` (${removedBefore} sessions removed before)` : ""),
      perm ? EXIT_PERMISSION : EXIT_FAILED,
    );
  }
}

/** The options of `prune`. */
export interface PruneOptions {
  keep?: number;
  olderThan?: number;
  maxSize?: number;
  dryRun?: boolean;
}

/** Register `prune`. */
export function register(program: Command): void {
  program
    .command("prune")
    .description("remove old sessions, oldest first, never losing a kept restore point")
    .argument("[dev]", "only prune the sessions of this device or image file")
    .addOption(
      new Option("--keep <n>", "keep the newest N restore points of each device")
        .argParser(parseKeep),
    )
    .addOption(
      new Option(
        "--older-than <duration>",
        "remove sessions that ended more than DURATION ago (30d, 12h, 1w2d)",
      ).argParser(parseOlderThan),
    )
    .addOption(
      new Option(
        "--max-size <size>",
        "remove the oldest sessions while a device's sessions take more than SIZE (10G, 512M)",
      ).argParser(parseMaxSize),
    )
    .option("--dry-run", "show what would be removed, remove nothing")
    .addHelpText(
      "after",
      "\nRestoring to the state before session k reads sessions k..n of its device, so prune\n" +
        "removes only the oldest sessions of each device: every kept session restores exactly\n" +
        "as before. The newest restore point of each device, open and live sessions, and\n" +
        "everything newer than them always stay; with --older-than or --max-size, --keep N\n" +
        "is a floor (N restore points stay whatever they select).",
    )
    .action(async (dev: string | undefined, o: PruneOptions, cmd: Command) => {
      // A dry run changes nothing, so it leaves no audit line.
      if (o.dryRun) return await runPrune(dev, o, globals(cmd));
      const rec: AuditRecord = { command: "prune", device: dev && absolutePath(dev), removed: [] };
      await audited(rec, () => runPrune(dev, o, globals(cmd), rec));
    });
}

/**
 * Carry out `prune` (exported for tests), recording in `audit` each session
 * as it is removed.
 */
export async function runPrune(
  dev: string | undefined,
  o: PruneOptions,
  opts: GlobalOptions,
  audit: AuditRecord = { command: "prune" },
): Promise<void> {
  if (o.keep === undefined && o.olderThan === undefined && o.maxSize === undefined) {
    o = { ...o, ...await configuredPolicy() };
  }
  const policy: RetentionPolicy = {
    keep: o.keep,
    olderThanMs: o.olderThan,
    maxBytes: o.maxSize,
  };
  const root = storeRoot(opts).root;
  const live = liveSessionIds();
  const all = await readStore(root, live);
  const only = dev === undefined
    ? undefined
    : new Set((await sessionsOfDevice(all, dev)).map((s) => s.id));
  // Measured only when needed: a store can hold many sessions.
  const sizes = o.maxSize !== undefined ? await measure(all) : null;
  const plan = planRetention(all, policy, {
    live,
    views: heldSessions(),
    bytesOf: sizes ? (s) => sizes.get(s.id) ?? 0 : undefined,
  }, only);
  const removedSizes = sizes ?? await measure(plan.remove);
  const human = !opts.json && !opts.quiet;
  const removed: Array<{ id: string; device: string; bytes: number }> = [];
  let freed = 0;
  for (const s of plan.remove) {
    const bytes = removedSizes.get(s.id) ?? 0;
    if (!o.dryRun) {
      await removeSession(s, removed.length);
      audit.removed?.push(s.id);
    }
    removed.push({ id: s.id, device: sessionDevice(s), bytes });
    freed += bytes;
    if (human) {
      println(`${o.dryRun ? "would remove" : "removed"} ${s.id} (${formatBytes(bytes)})`);
    }
  }
  const kept = plan.keep.map((k) => ({
    id: k.session.id,
    device: sessionDevice(k.session),
    reason: k.reason,
    detail: k.detail,
  }));
  if (opts.json) {
    printJson({ store: root, dry_run: Boolean(o.dryRun), removed, kept, freed_bytes: freed });
  } else if (!opts.quiet) {
    for (const k of kept) println(`kept ${k.id}: ${k.reason} (${k.detail})`);
    println(
      `${o.dryRun ? "would free" : "freed"} ${formatBytes(freed)} ` +
        `(${removed.length} removed, ${kept.length} kept)`,
    );
  }
}
