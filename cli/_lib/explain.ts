/**
 * Turning failures into the one line the user sees: what went wrong, its
 * errno name, and what to do about it, with the exit code of the contract
 * in ./errors.ts.
 * @module
 */

import { ERRNO, errnoDescription, ErrnoError, errnoName } from "../../ffi/libc.ts";
import { ModuleNotLoadedError } from "../../ffi/control.ts";
import { CliError, EXIT_FAILED, EXIT_NO_MODULE, EXIT_PERMISSION } from "./errors.ts";

/** The message for a module that is not loaded. */
export const NOT_LOADED = "module not loaded: run `bdsnap load`";

/** What the failed call was about, to word the message. */
export interface ErrnoContext {
  /** "activate", "deactivate", "set password", "status", "load", "unload", … */
  op: string;
  /** The path the operation was about, if any. */
  path?: string;
  /** The store root, for EXDEV. */
  storeRoot?: string;
  /** Effective uid (to tell "not root" from "wrong password"); default: unknown. */
  euid?: number;
}

/** Map an errno from a control operation to a user message and exit code. */
export function explainErrno(errno: number, ctx: ErrnoContext): CliError {
  const name = errnoName(errno);
  const what = ctx.path ?? "the device";
  const fail = (msg: string, code = EXIT_FAILED) => new CliError(`${msg} (${name})`, code);
  switch (errno) {
    case ERRNO.EPERM:
      if (ctx.euid !== undefined && ctx.euid !== 0) {
        return new CliError(`not root (${name}): ${ctx.op} needs root`, EXIT_PERMISSION);
      }
      if (ctx.euid === 0) return new CliError(`wrong password (${name})`, EXIT_PERMISSION);
      return new CliError(`wrong password or not root (${name})`, EXIT_PERMISSION);
    case ERRNO.EACCES:
      return new CliError(`permission denied (${name}): ${ctx.op} needs root`, EXIT_PERMISSION);
    case ERRNO.ENOENT:
      return fail(`no such device or file: ${what}`);
    case ERRNO.ENOTBLK:
      return fail(`${what} is neither a block device nor a regular file`);
    case ERRNO.EALREADY:
      return ctx.op === "deactivate"
        ? fail(`${what} is not activated`)
        : fail(`${what} is already activated`);
    case ERRNO.EFAULT:
      return fail(`the module could not read the ${ctx.op} arguments; this is a bug in bdsnap`);
    case ERRNO.ENAMETOOLONG:
      return fail(`path or password too long`);
    case ERRNO.EXDEV:
      return fail(
        `the snapshot store${ctx.storeRoot ? ` (${ctx.storeRoot})` : ""} lives on ${what}: ` +
          "put the store on another device",
      );
    case ERRNO.EINVAL:
      return fail(
        `the module refused ${ctx.op}${ctx.path ? ` of ${ctx.path}` : ""}; \`dmesg\` says why`,
      );
    case ERRNO.EBUSY:
      return fail(`${what} is busy`);
    case ERRNO.EAGAIN:
      return fail(`the module is busy; try again`);
    case ERRNO.ENOMEM:
      return fail(`out of memory`);
    case ERRNO.ENOTTY:
      return fail(
        "/dev/bdsnap does not know this request: the CLI and the loaded module do not match; " +
          "reload the module",
      );
    case ERRNO.ENOSYS:
      return new CliError(
        `the bdsnap system calls are not there (${name}): the module is not loaded or is ` +
          "being unloaded; run `bdsnap load`",
        EXIT_NO_MODULE,
      );
    default:
      return fail(`${ctx.op}${ctx.path ? ` ${ctx.path}` : ""} failed: ${errnoDescription(errno)}`);
  }
}

/**
 * Map any error thrown by a command to a {@linkcode CliError}, or `null` if
 * it is not an error the user can act on (a bug: shown as an internal error).
 */
export function toCliError(e: unknown, ctx?: ErrnoContext): CliError | null {
  if (e instanceof CliError) return e;
  if (e instanceof ModuleNotLoadedError) {
    return new CliError(
      e.message === "module not loaded" ? NOT_LOADED : `${e.message}: run \`bdsnap load\``,
      EXIT_NO_MODULE,
    );
  }
  if (e instanceof ErrnoError) return explainErrno(e.errno, ctx ?? { op: e.op });
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
    return new CliError(`permission denied: ${e.message} (run as root)`, EXIT_PERMISSION);
  }
  if (e instanceof Deno.errors.NotFound) return new CliError(e.message, EXIT_FAILED);
  return null;
}

/** Run `fn`; rethrow control failures as {@linkcode CliError}s worded for `ctx`. */
export function explained<T>(ctx: ErrnoContext, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toCliError(e, ctx) ?? e;
  }
}

/** Is this error an ErrnoError with one of these names? */
export function isErrno(e: unknown, ...names: string[]): e is ErrnoError {
  return e instanceof ErrnoError && names.includes(e.code);
}
