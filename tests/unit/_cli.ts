/**
 * Test helper: run the bdsnap CLI in-process (fast, output captured) or as a
 * child process (for stdin, signals and exit status).
 * @module
 */

import { main } from "../../cli/main.ts";
import { captureIo } from "../../cli/_lib/io.ts";

/** What a run of the CLI gave. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `bdsnap ARGS` in this process with some environment variables set (undefined: unset). */
export async function run(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<RunResult> {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(env)) {
    saved.set(k, Deno.env.get(k));
    if (v === undefined) Deno.env.delete(k);
    else Deno.env.set(k, v);
  }
  try {
    const r = await captureIo(() => main(args));
    return { code: r.result, stdout: r.stdout, stderr: r.stderr };
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
}

/** The path of the CLI's entry point. */
export const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;

/** Start `bdsnap ARGS` as a child process with stdin closed. */
export function spawn(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Run `bdsnap ARGS` as a child process with stdin closed, to the end. */
export async function runChild(
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const out = await spawn(args, env).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
