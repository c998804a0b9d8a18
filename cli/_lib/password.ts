/**
 * Where the service password comes from. Never from the command line:
 *
 * 1. `--password-file F` (the first line of F), if given;
 * 2. else the file named by the environment variable `BDSNAP_PASSWORD_FILE`,
 *    if set (for the *current* password; `setup` reads the new one only from
 *    `--password-file` or the prompt);
 * 3. else a hidden prompt, if standard input is a terminal;
 * 4. else a usage error (exit 2).
 *
 * @module
 */

import { CliError, EXIT_FAILED, EXIT_USAGE } from "./errors.ts";
import { isPromptCancel, password as promptPassword } from "./prompts.ts";
import { PASSWD_MAX } from "../../ffi/uapi.ts";

/** The environment variable naming a file that holds the current password. */
export const PASSWORD_FILE_ENV = "BDSNAP_PASSWORD_FILE";
/** Shortest password `setup` accepts. */
export const MIN_PASSWORD_LENGTH = 8;
/** Longest password in bytes (the kernel's limit, without the NUL). */
export const MAX_PASSWORD_BYTES = PASSWD_MAX - 1;

/** Where a password will be read from. */
export type PasswordSource =
  | { kind: "file"; path: string; from: "option" | "env" }
  | { kind: "prompt" };

/** The inputs of {@linkcode choosePasswordSource}. */
export interface SourceInputs {
  /** --password-file (or --old-password-file). */
  file?: string;
  /**
   * The value of BDSNAP_PASSWORD_FILE ("" when unset), or undefined when the
   * variable is not to be considered at all.
   */
  envFile?: string;
  /** Is standard input a terminal? */
  isTerminal: boolean;
  /** The option to name in the usage error. */
  optionName?: string;
}

/** Decide where to read a password from; throws a usage CliError if nowhere. */
export function choosePasswordSource(i: SourceInputs): PasswordSource {
  if (i.file !== undefined && i.file !== "") return { kind: "file", path: i.file, from: "option" };
  if (i.envFile) return { kind: "file", path: i.envFile, from: "env" };
  if (i.isTerminal) return { kind: "prompt" };
  const opt = i.optionName ?? "--password-file";
  throw new CliError(
    `no password: not on a terminal, so give ${opt} F` +
      (i.envFile === undefined ? "" : ` or set ${PASSWORD_FILE_ENV}`) +
      " (passwords are never taken from the command line)",
    EXIT_USAGE,
  );
}

/** The password in a file's text: its first line, without the line end. */
export function passwordFromText(text: string): string {
  const nl = text.indexOf("\n");
  const line = nl === -1 ? text : text.slice(0, nl);
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/** Read the first line of a password file; CliError when it cannot be read. */
export async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Deno.errors.IsADirectory
      ? "is a directory"
      : (e as Error).message;
    throw new CliError(`cannot read password file ${path}: ${why}`, EXIT_FAILED);
  }
  return passwordFromText(text);
}

/**
 * Check a password against the kernel's limits, and for a new password also
 * the minimum length. Returns an error message, or null if it is acceptable.
 */
export function passwordProblem(pw: string, isNew: boolean): string | null {
  if (pw === "") return "the password is empty";
  if (pw.includes("\0")) return "the password contains a NUL character";
  if (new TextEncoder().encode(pw).length > MAX_PASSWORD_BYTES) {
    return `the password is longer than ${MAX_PASSWORD_BYTES} bytes`;
  }
  if (isNew && [...pw].length < MIN_PASSWORD_LENGTH) {
    return `the password is shorter than ${MIN_PASSWORD_LENGTH} characters`;
  }
  return null;
}

/** Prompt with hidden input; Ctrl-C becomes a "cancelled" CliError. */
export async function promptHidden(message: string): Promise<string> {
  try {
    return await promptPassword({ message });
  } catch (e) {
    if (isPromptCancel(e)) throw new CliError("cancelled", EXIT_FAILED);
    throw e;
  }
}

/** Options of {@linkcode getPassword}. */
export interface GetPasswordOptions {
  /** --password-file. */
  file?: string;
  /** Consider BDSNAP_PASSWORD_FILE (default true). */
  useEnv?: boolean;
  /** The prompt text. */
  message?: string;
  /** The option to name in errors. */
  optionName?: string;
}

/** The current service password, from a file, the environment's file, or a prompt. */
export async function getPassword(o: GetPasswordOptions = {}): Promise<string> {
  const src = choosePasswordSource({
    file: o.file,
    envFile: o.useEnv === false ? undefined : (Deno.env.get(PASSWORD_FILE_ENV) ?? ""),
    isTerminal: Deno.stdin.isTerminal(),
    optionName: o.optionName,
  });
  const pw = src.kind === "file"
    ? await readPasswordFile(src.path)
    : await promptHidden(o.message ?? "bdsnap password:");
  const problem = passwordProblem(pw, false);
  if (problem) {
    const where = src.kind === "file" ? ` (in ${src.path})` : "";
    throw new CliError(`${problem}${where}`, EXIT_USAGE);
  }
  return pw;
}

/**
 * A new password: the first line of `file`, or typed twice at a hidden
 * prompt. Refuses empty, short (< 8 characters) and over-long passwords.
 */
export async function getNewPassword(file?: string): Promise<string> {
  const src = choosePasswordSource({ file, isTerminal: Deno.stdin.isTerminal() });
  let pw: string;
  if (src.kind === "file") {
    pw = await readPasswordFile(src.path);
  } else {
    pw = await promptHidden("New bdsnap password:");
    const problem = passwordProblem(pw, true);
    if (problem) throw new CliError(problem, EXIT_USAGE);
    const again = await promptHidden("Repeat the new password:");
    if (again !== pw) throw new CliError("the passwords do not match", EXIT_USAGE);
  }
  const problem = passwordProblem(pw, true);
  if (problem) {
    throw new CliError(
      `${problem}${src.kind === "file" ? ` (in ${src.path})` : ""}`,
      EXIT_USAGE,
    );
  }
  return pw;
}
