/**
 * `bdsnap sessions [DEV]`: the sessions in the store, oldest first. Reads the
 * store itself, so it works without the module (open sessions then show as
 * "interrupted" if their meta.json still says open).
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { globals, storeRoot } from "./_lib/context.ts";
import { printJson, println } from "./_lib/io.ts";
import { formatTable } from "./_lib/table.ts";
import { formatBytes, formatNs } from "./_lib/units.ts";
import { sessionsOfDevice } from "./_lib/device_path.ts";
import { readStore, sessionChunks, sessionDevice, sessionJson } from "./_lib/store_view.ts";
import { chainNumbers } from "./_lib/session_spec.ts";
import type { Session } from "../lib/store.ts";
import { restorability } from "../lib/plan.ts";

/**
 * How a restore to the state before each session would go, as `restore`
 * itself judges it (`all` is the whole store: a verdict reads the chain).
 */
function verdicts(sessions: readonly Session[], all: readonly Session[]): Map<string, string> {
  return new Map(sessions.map((s) => [s.id, restorability(all, s.id).kind]));
}

/**
 * The sessions as `sessions --json` lists them: each session's JSON shape
 * with `restore` (`exact`, `inexact`: only with --accept-gap, `refused`),
 * `exact`, and `chain_number`, its place in its device's chain (the `#`
 * column).
 */
export function sessionsJson(sessions: readonly Session[], all: readonly Session[] = sessions) {
  const numbers = chainNumbers(sessions);
  const restore = verdicts(sessions, all);
  return sessions.map((s) => ({
    ...sessionJson(s),
    restore: restore.get(s.id)!,
    exact: restore.get(s.id) === "exact",
    chain_number: numbers.get(s.id) ?? null,
  }));
}

/** The human table of sessions (`all`: the whole store, for the RESTORE column). */
export function sessionLines(sessions: Session[], all: readonly Session[] = sessions): string[] {
  if (sessions.length === 0) return ["no sessions"];
  const numbers = chainNumbers(sessions);
  const restore = verdicts(sessions, all);
  return formatTable(
    [
      { title: "#", align: "right" },
      { title: "SESSION" },
      { title: "DEVICE" },
      { title: "FS" },
      { title: "STARTED" },
      { title: "ENDED" },
      { title: "CHUNKS", align: "right" },
      { title: "SIZE", align: "right" },
      { title: "DURABILITY" },
      { title: "RESTORE" },
      { title: "STATE" },
    ],
    sessions.map((s) => {
      const j = sessionJson(s);
      return [
        String(numbers.get(s.id) ?? ""),
        s.id,
        sessionDevice(s),
        j.fs_type ?? "-",
        j.start_ns ? formatNs(j.start_ns) : "-",
        j.end_ns ? formatNs(j.end_ns) : "-",
        String(sessionChunks(s)),
        formatBytes(s.dataBytes),
        j.durability ?? "-",
        restore.get(s.id) === "refused" ? "no" : restore.get(s.id)!,
        s.state + (j.error ? ` (${j.error})` : "") + (j.superseded_by ? ", superseded" : ""),
      ];
    }),
  );
}

/** Register `sessions`. */
export function register(program: Command): void {
  program
    .command("sessions")
    .description("list the sessions in the store, oldest first (works without the module)")
    .argument("[dev]", "only the sessions of this device or image file")
    .addHelpText(
      "after",
      "\nStates: open, closed, failed, damaged, interrupted (ended by a crash), incomplete\n" +
        "(files missing). DURABILITY: write-ahead (every pre-image was saved before its write\n" +
        "reached the device: exact even after a crash) or flush (older modules: saved at the\n" +
        "device's flushes, so a crash can lose some). RESTORE: how `bdsnap restore` would\n" +
        "return to the state before the mount: exact, inexact (only with --accept-gap), no.\n" +
        "`bdsnap verify` also checks the data checksums.",
    )
    .action(async (dev: string | undefined, _o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      const root = storeRoot(opts).root;
      const all = await readStore(root);
      const sessions = await sessionsOfDevice(all, dev);
      if (opts.json) printJson({ store: root, sessions: sessionsJson(sessions, all) });
      else for (const l of sessionLines(sessions, all)) println(l);
    });
}
