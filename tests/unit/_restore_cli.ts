/**
 * Test helper: a `bdsnap` program holding only the restore commands
 * (restore, export, verify) with injectable dependencies, run in-process with
 * output captured, or as a script (`deno run _restore_cli.ts ARGS`) for the
 * pseudo-terminal tests.
 * @module
 */

import { Command } from "../../cli/_lib/commander.ts";
import { captureIo, io } from "../../cli/_lib/io.ts";
import { reportError } from "../../cli/main.ts";
import * as restore from "../../cli/restore.ts";
import * as exportCmd from "../../cli/export.ts";
import * as verify from "../../cli/verify.ts";
import type { RestoreDeps } from "../../cli/_lib/restore_common.ts";

/** The restore commands under the global options of the real program. */
export function program(deps: RestoreDeps = {}): Command {
  const p = new Command("bdsnap")
    .option("--store <dir>")
    .option("--json")
    .option("-q, --quiet")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  restore.register(p, deps);
  exportCmd.register(p, deps);
  verify.register(p, deps);
  return p;
}

/** What a run gave. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the restore commands in-process with `deps`. */
export async function run(args: string[], deps: RestoreDeps = {}): Promise<RunResult> {
  const r = await captureIo(async () => {
    try {
      await program(deps).parseAsync(args, { from: "user" });
      return 0;
    } catch (e) {
      return reportError(e);
    }
  });
  return { code: r.result, stdout: r.stdout, stderr: r.stderr };
}

if (import.meta.main) {
  // As a script: real terminal checks, no module (nothing is activated or live).
  const deps: RestoreDeps = { isActivated: () => false, liveSessions: () => new Set() };
  try {
    await program(deps).parseAsync(Deno.args, { from: "user" });
    Deno.exit(0);
  } catch (e) {
    Deno.exit(reportError(e));
  }
}
