/**
 * `bdsnap verify [SESSION…]`: check each session's meta.json, map and data
 * checksums (all sessions when none is named) and report each as
 *
 * - `ok`: everything checks out (a closed session, or an open one so far);
 * - `incomplete`: what is there checks out, but the session does not hold
 *   every change of its mount (interrupted by a crash, failed, or files
 *   missing);
 * - `damaged`: something breaks the format, with the file and offset.
 *
 * Exits 1 when any session is damaged or not found (with `--strict`, also
 * when one is failed, interrupted or incomplete), else 0.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { CliError, EXIT_FAILED } from "./_lib/errors.ts";
import { globals, storeRoot } from "./_lib/context.ts";
import { printJson, println } from "./_lib/io.ts";
import { progressBar, progressWanted } from "./_lib/progress.ts";
import { formatTable } from "./_lib/table.ts";
import { formatBytes } from "./_lib/units.ts";
import { readStore } from "./_lib/store_view.ts";
import { readSessionSpec } from "./_lib/session_spec.ts";
import { cli, type RestoreDeps, withDefaults } from "./_lib/restore_common.ts";
import { CrcPool } from "../lib/crc_pool.ts";
import { formatProblem, type Problem } from "../lib/errors.ts";
import { type Session, verifySessionData } from "../lib/store.ts";

/** The verdict on one session. */
export type VerifyResult = "ok" | "incomplete" | "damaged";

/** The stable JSON shape of one session's verification. */
export interface VerifyJson {
  id: string;
  state: string;
  result: VerifyResult;
  records: number;
  bytes: number;
  torn_tail: { offset: number; reason: string } | null;
  problems: Array<{ file: string | null; offset: number | null; message: string }>;
}

/** Verify one session's data and judge it. */
export async function verifyOne(
  s: Session,
  onProgress?: (done: number, total: number) => void,
  pool?: CrcPool | null,
): Promise<VerifyJson> {
  const problems: Problem[] = [...s.problems];
  if (s.state !== "damaged" && s.state !== "incomplete") {
    problems.push(...await cli(() => verifySessionData(s, { onProgress, pool })));
  }
  const result: VerifyResult =
    s.state === "damaged" || (s.state !== "incomplete" && problems.length > 0)
      ? "damaged"
      : s.state === "incomplete" || s.state === "interrupted" || s.state === "failed"
      ? "incomplete"
      : "ok";
  return {
    id: s.id,
    state: problems.length > 0 && s.state !== "incomplete" ? "damaged" : s.state,
    result,
    records: s.records.count,
    bytes: s.dataBytes,
    torn_tail: s.tail ? { offset: s.tail.offset, reason: s.tail.reason } : null,
    problems: problems.map((p) => ({
      file: p.file ?? null,
      offset: p.offset ?? null,
      message: p.message,
    })),
  };
}

/** Carry out `verify` (exported for tests); returns the per-session results. */
export async function runVerify(
  ids: string[],
  opts: ReturnType<typeof globals>,
  deps: RestoreDeps = {},
  strict = false,
): Promise<VerifyJson[]> {
  const d = withDefaults(deps);
  const root = storeRoot(opts).root;
  const sessions = ids.length === 0
    ? await readStore(root, d.liveSessions())
    : await Promise.all(ids.map((id) => readSessionSpec(root, id)));
  const total = sessions.reduce((n, s) => n + s.dataBytes, 0);
  const progress = await progressBar(progressWanted(opts.quiet));
  const results: VerifyJson[] = [];
  let base = 0;
  const pool = await CrcPool.startFor(total);
  try {
    for (const s of sessions) {
      results.push(
        await verifyOne(
          s,
          (done) => progress.update({ phase: "verify", done: base + done, total }),
          pool,
        ),
      );
      base += s.dataBytes;
    }
  } finally {
    pool?.close();
    progress.stop();
  }
  // --strict: every session that does not hold every change of its mount
  // (failed, interrupted, incomplete) fails the run too.
  const bad = results.filter((r) => r.result === "damaged" || (strict && r.result !== "ok"));
  if (opts.json) {
    printJson({ store: root, sessions: results });
  } else if (!opts.quiet || bad.length > 0) {
    if (results.length === 0) println("no sessions");
    else {
      const lines = formatTable(
        [
          { title: "SESSION" },
          { title: "STATE" },
          { title: "RESULT" },
          { title: "RECORDS", align: "right" },
          { title: "DATA", align: "right" },
        ],
        results.map((r) => [r.id, r.state, r.result, String(r.records), formatBytes(r.bytes)]),
      );
      println(lines[0]);
      results.forEach((r, i) => {
        println(lines[i + 1]);
        for (const p of r.problems) {
          println(
            `    ${
              formatProblem({
                file: p.file ?? undefined,
                offset: p.offset ?? undefined,
                message: p.message,
              })
            }`,
          );
        }
        if (r.torn_tail && r.result !== "damaged") {
          println(
            `    blocks.map at offset ${r.torn_tail.offset}: torn tail ignored (${r.torn_tail.reason})`,
          );
        }
      });
    }
  }
  if (bad.length > 0) {
    // The table (or JSON) above already says where; the exit code says that it matters.
    throw new CliError(
      opts.json ? "" : `${bad.length} ${strict ? "damaged or incomplete" : "damaged"} ` +
        `session(s): ${bad.map((b) => b.id).join(", ")}`,
      EXIT_FAILED,
    );
  }
  return results;
}

/** Register `verify`. `deps` replaces the module-backed lookups (tests). */
export function register(program: Command, deps: RestoreDeps = {}): void {
  program
    .command("verify")
    .description("check sessions' maps, data checksums and meta.json: ok, incomplete or damaged")
    .argument(
      "[session...]",
      "sessions as --session takes them: id, directory, latest, number, unique prefix " +
        "(default: every session in the store)",
    )
    .addHelpText(
      "after",
      "\nincomplete: consistent, but not every change of the mount is there (interrupted,\n" +
        "failed, or files missing). damaged: reported with file and offset; exit status 1.\n" +
        "--strict: exit status 1 for incomplete sessions too.",
    )
    .option("--strict", "also exit 1 for failed, interrupted or incomplete sessions")
    .action(async (ids: string[], o: { strict?: boolean }, cmd: Command) => {
      await runVerify(ids, globals(cmd), deps, Boolean(o.strict));
    });
}
