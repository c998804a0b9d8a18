/**
 * Small helpers for running host commands from the harness.
 * @module
 */

/** Result of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion and capture its output. Throws only if it cannot start. */
export async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Run a command and throw with its output when it fails. */
export async function runChecked(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (exit ${r.code}):\n${(r.stderr || r.stdout).trim()}`,
    );
  }
  return r.stdout;
}

/** True if an executable of that name is on PATH. */
export async function haveCommand(name: string): Promise<boolean> {
  const r = await run("sh", ["-c", `command -v ${name}`]);
  return r.code === 0;
}

/** Whether this process runs as root (apt installs need it). */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** Print a progress line for humans on stderr, so stdout stays the guest's. */
export function log(message: string): void {
  if (Deno.env.get("BDSNAP_VM_QUIET") === "1") return;
  console.error(`[vm] ${message}`);
}
