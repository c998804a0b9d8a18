/**
 * Where the CLI writes. Every command prints through {@linkcode io}, so tests
 * can run commands in-process and capture what they print, and a closed
 * standard output ends the command in one place.
 * @module
 */

const encoder = new TextEncoder();

/** The two output streams, replaceable for tests. */
export interface Io {
  /** Write text to standard output (data: tables, JSON). */
  out(text: string): void;
  /** Write text to standard error (messages, warnings, prompts). */
  err(text: string): void;
}

/**
 * Standard output's reader went away (EPIPE: `bdsnap … | head`). Thrown by
 * every write to it from then on, so the command ends at once; main exits
 * quietly with status 141 (`EXIT_PIPE`), as a tool killed by SIGPIPE would.
 */
export class StdoutClosedError extends Error {
  constructor() {
    super("standard output was closed");
    this.name = "StdoutClosedError";
  }
}

let stdoutClosed = false;

/** Has a write to standard output found its reader gone? */
export function isStdoutClosed(): boolean {
  return stdoutClosed;
}

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

function writeOut(text: string): void {
  if (stdoutClosed) throw new StdoutClosedError();
  try {
    writeAll(Deno.stdout, text);
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
    stdoutClosed = true;
    throw new StdoutClosedError();
  }
}

/** The process's real streams. */
export const stdio: Io = {
  out: writeOut,
  err: (text) => writeAll(Deno.stderr, text),
};

let current: Io = stdio;

/** The current streams. */
export const io: Io = {
  out: (text) => current.out(text),
  err: (text) => current.err(text),
};

/** Print one line on standard output. */
export function println(line = ""): void {
  io.out(line + "\n");
}

/** Print one line on standard error. */
export function eprintln(line = ""): void {
  io.err(line + "\n");
}

/** Print a value as JSON on standard output (two-space indent, one trailing newline). */
export function printJson(value: unknown): void {
  io.out(JSON.stringify(value, null, 2) + "\n");
}

/** Print a value as one line of JSON (for event streams). */
export function printJsonLine(value: unknown): void {
  io.out(JSON.stringify(value) + "\n");
}

/** What {@linkcode captureIo} collected. */
export interface Captured<T> {
  result: T;
  stdout: string;
  stderr: string;
}

/** Run `fn` with both streams captured into strings. Not re-entrant. */
export async function captureIo<T>(fn: () => T | Promise<T>): Promise<Captured<T>> {
  let stdout = "", stderr = "";
  const saved = current;
  current = { out: (t) => void (stdout += t), err: (t) => void (stderr += t) };
  try {
    const result = await fn();
    return { result, stdout, stderr };
  } finally {
    current = saved;
  }
}
