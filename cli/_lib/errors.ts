/**
 * Exit codes and the one error type the CLI turns into a one-line message.
 *
 * The codes are a contract with scripts (docs/CLI.md): keep them stable.
 * @module
 */

export const EXIT_OK = 0;
/** The operation was attempted and failed. */
export const EXIT_FAILED = 1;
/** The command line was wrong. */
export const EXIT_USAGE = 2;
/** Not root, or the service password was refused. */
export const EXIT_PERMISSION = 3;
/** The kernel module is not loaded. */
export const EXIT_NO_MODULE = 4;

/** An error meant for the user: printed as one line, never with a stack trace. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_FAILED) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}
