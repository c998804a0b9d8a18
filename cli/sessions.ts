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

/**
 * The sessions as `sessions --json` lists them: each session's JSON shape
 * with `chain_number`, its place in its device's chain (the `#` column).
 */
export function sessionsJson(sessions: readonly Session[]) {
  const numbers = chainNumbers(sessions);
  return sessions.map((s) => ({ ...sessionJson(s), chain_number: numbers.get(s.id) ?? null }));
}

/** The human table of sessions. */
export function sessionLines(sessions: Session[]): string[] {
  if (sessions.length === 0) return ["no sessions"];
  const numbers = chainNumbers(sessions);
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
      "\nStates: open, closed, failed, damaged, interrupted (ended by a crash; restorable),\n" +
        "incomplete (files missing). `bdsnap verify` also checks the data checksums.",
    )
    .action(async (dev: string | undefined, _o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      const root = storeRoot(opts).root;
      const sessions = await sessionsOfDevice(await readStore(root), dev);
      if (opts.json) printJson({ store: root, sessions: sessionsJson(sessions) });
      else for (const l of sessionLines(sessions)) println(l);
    });
}
