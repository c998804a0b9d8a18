/**
 * Exit codes, the machine codes of failures, and the one error type the CLI
 * turns into a one-line message (and, with `--json`, an error object).
 *
 * Both are a contract with scripts (docs/CLI.md, "Exit codes" and
 * "Scripting contract"): keep them stable.
 * @module
 */

import { type Problem, RestoreError, type RestoreErrorCode } from "../../lib/errors.ts";

/** Success. */
export const EXIT_OK = 0;
/** The operation was attempted and failed. */
export const EXIT_FAILED = 1;
/** The command line was wrong. */
export const EXIT_USAGE = 2;
/** Not root, or the service password was refused. */
export const EXIT_PERMISSION = 3;
/** The kernel module is not loaded. */
export const EXIT_NO_MODULE = 4;
/** Standard output was closed by its reader: 128 + SIGPIPE, as a killed coreutils tool. */
export const EXIT_PIPE = 141;

/**
 * What kind of failure an error is, for scripts: the store reader's and
 * restorer's codes ({@linkcode RestoreErrorCode}) and the CLI's own.
 */
export type ErrorCode =
  | RestoreErrorCode
  /** The command line was wrong (exit 2). */
  | "usage"
  /** The kernel module is not loaded (exit 4). */
  | "module-missing"
  /** The module refused the request (`dmesg` says why), or does not know it. */
  | "refused"
  /** The device is not activated (deactivate). */
  | "not-activated"
  /** The user cancelled at a prompt. */
  | "cancelled"
  /** A bug in bdsnap. */
  | "internal"
  /** Any other failure of an attempted operation (exit 1). */
  | "error";

/** The code an error gets from its exit code alone. */
export function codeForExit(exitCode: number): ErrorCode {
  switch (exitCode) {
    case EXIT_USAGE:
      return "usage";
    case EXIT_PERMISSION:
      return "permission";
    case EXIT_NO_MODULE:
      return "module-missing";
    default:
      return "error";
  }
}

/** What a {@linkcode CliError} says besides its message and exit code. */
export interface CliErrorOptions {
  /** The machine code; default: the cause's (a RestoreError), else from the exit code. */
  code?: ErrorCode;
  /** The errno name (`"ENOENT"`); default: the cause's, else none. */
  errno?: string | null;
  /** The problems behind it; default: the cause's (a RestoreError), else none. */
  problems?: readonly Problem[];
  /** The error this one explains. */
  cause?: unknown;
}

/** An error meant for the user: printed as one line, never with a stack trace. */
export class CliError extends Error {
  /** The process's exit code for it. */
  readonly exitCode: number;
  /** What kind of failure it is, for scripts. */
  readonly code: ErrorCode;
  /** The errno name behind it, if any. */
  readonly errno: string | null;
  /** The problems behind it (a refused restore's, a damaged session's). */
  readonly problems: readonly Problem[];
  /**
   * Make an error for the user.
   * @param message one line; `""` when it was reported already
   * @param exitCode the exit code for it
   * @param options its code, errno, problems and cause
   */
  constructor(message: string, exitCode: number = EXIT_FAILED, options: CliErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CliError";
    this.exitCode = exitCode;
    const r = options.cause instanceof RestoreError ? options.cause : undefined;
    this.code = options.code ?? r?.code ?? codeForExit(exitCode);
    this.errno = options.errno !== undefined ? options.errno : r?.errno ?? null;
    this.problems = options.problems ?? r?.problems ?? [];
  }
}

/** A RestoreError as a CliError: exit 3 for permission, else 1; `message` replaces its own. */
export function fromRestoreError(e: RestoreError, message: string = e.message): CliError {
  return new CliError(message, e.code === "permission" ? EXIT_PERMISSION : EXIT_FAILED, {
    cause: e,
  });
}

/** A problem in the JSON error object: every key present, `null` when unknown. */
export interface ProblemJson {
  session: string | null;
  file: string | null;
  offset: number | null;
  message: string;
}

/** The JSON error object `--json` prints on stdout for a failure (docs/CLI.md). */
export interface ErrorJson {
  error: {
    code: ErrorCode;
    errno: string | null;
    message: string;
    problems: ProblemJson[];
  };
}

/** A failure as the JSON error object. */
export function errorJson(
  e: Pick<CliError, "code" | "errno" | "message" | "problems">,
): ErrorJson {
  return {
    error: {
      code: e.code,
      errno: e.errno,
      message: e.message,
      problems: e.problems.map((p) => ({
        session: p.session ?? null,
        file: p.file ?? null,
        offset: p.offset ?? null,
        message: p.message,
      })),
    },
  };
}
