/**
 * Turning failures into the one line the user sees: what went wrong, its
 * errno name, and what to do about it, with the exit code of the contract
 * in ./errors.ts.
 * @module
 */

import { ERRNO, errnoDescription, ErrnoError, errnoName } from "../../ffi/libc.ts";
import { ModuleNotLoadedError } from "../../ffi/control.ts";
import { RestoreError } from "../../lib/errors.ts";
import { ioError } from "../../lib/io_error.ts";
import {
  CliError,
  type ErrorCode,
  EXIT_FAILED,
  EXIT_NO_MODULE,
  EXIT_PERMISSION,
  fromRestoreError,
} from "./errors.ts";

/** The message for a module that is not loaded. */
export const NOT_LOADED = "module not loaded: run `bdsnap load`";

/** What the failed call was about, to word the message. */
export interface ErrnoContext {
  /** "activate", "deactivate", "set password", "status", "load", "unload", … */
  op: string;
  /** The path the operation was about, if any. */
  path?: string;
  /** The store root, for EXDEV and ENOTBLK. */
  storeRoot?: string;
  /**
   * `path` is a block device or a regular file, as activate wants: an
   * ENOTBLK is then about the store. Undefined: not known.
   */
  pathUsable?: boolean;
  /** Effective uid (to tell "not root" from "wrong password"); default: unknown. */
  euid?: number;
}

/**
 * Map an errno from a control operation to a user message, exit code and
 * machine code (the errno's name goes along as the error's `errno`).
 */
export function explainErrno(errno: number, ctx: ErrnoContext): CliError {
  const name = errnoName(errno);
  const what = ctx.path ?? "the device";
  const make = (msg: string, exit: number, code?: ErrorCode) =>
    new CliError(msg, exit, { code, errno: name });
  const fail = (msg: string, code: ErrorCode = "error") =>
    make(`${msg} (${name})`, EXIT_FAILED, code);
  const store = ctx.storeRoot ? ` (${ctx.storeRoot})` : "";
  const other = () =>
    fail(
      `${ctx.op}${ctx.path ? ` ${ctx.path}` : ""} failed: ${errnoDescription(errno)}`,
      errno === ERRNO.EIO ? "io" : "error",
    );
  const storeRootRule = (why: string) =>
    `the snapshot store root${store} ${why}: it must be a directory (not a symlink) owned ` +
    "by root and not writable by group or others, so that nobody else can redirect or read " +
    "the pre-images; `dmesg` says what is wrong";
  switch (errno) {
    case ERRNO.EPERM:
      if (ctx.euid !== undefined && ctx.euid !== 0) {
        return make(`not root (${name}): ${ctx.op} needs root`, EXIT_PERMISSION);
      }
      if (ctx.euid === 0) return make(`wrong password (${name})`, EXIT_PERMISSION);
      return make(`wrong password or not root (${name})`, EXIT_PERMISSION);
    case ERRNO.EACCES:
      // As root, the module's refusal of a store root others could tamper with.
      if (ctx.op === "activate" && ctx.euid === 0) {
        return fail(storeRootRule("is not safe"), "invalid");
      }
      return make(`permission denied (${name}): ${ctx.op} needs root`, EXIT_PERMISSION);
    case ERRNO.ELOOP:
      if (ctx.op !== "activate") return other();
      return fail(storeRootRule("is a symbolic link; give its target"), "invalid");
    case ERRNO.ENOTDIR:
      if (ctx.op !== "activate") return other();
      return fail(storeRootRule("is not a directory"), "invalid");
    case ERRNO.ENOENT:
      return fail(`no such device or file: ${what}`, "not-found");
    case ERRNO.ENOTBLK: {
      const bad = `${what} is neither a block device nor a regular file`;
      if (ctx.op !== "activate" || ctx.pathUsable === false) return fail(bad, "invalid");
      // The module also refuses a store whose filesystem has no block device.
      const noDev = `the snapshot store${store} is on a filesystem without a block device ` +
        "(NFS, FUSE, virtiofs, tmpfs), which the module refuses";
      return fail(
        ctx.pathUsable ? `${noDev}: put the store on a local block device` : `${bad}, or ${noDev}`,
        "invalid",
      );
    }
    case ERRNO.EMEDIUMTYPE:
      // The module refuses zoned devices at activation.
      if (ctx.op !== "activate") return other();
      return fail(
        `${what} is a zoned block device, and bdsnap cannot snapshot zoned devices: zone ` +
          "resets and zone appends cannot be copied on write",
        "invalid",
      );
    case ERRNO.EALREADY:
      return ctx.op === "deactivate"
        ? fail(`${what} is not activated`, "not-activated")
        : fail(`${what} is already activated`, "activated");
    case ERRNO.EFAULT:
      return fail(
        `the module could not read the ${ctx.op} arguments; this is a bug in bdsnap`,
        "internal",
      );
    case ERRNO.ENAMETOOLONG:
      return fail(`path or password too long`, "invalid");
    case ERRNO.EXDEV:
      return fail(
        `the snapshot store${store} lives on ${what} or on a device stacked on it (a loop ` +
          "image kept on it, a dm or md device over it): put the store on another device",
        "invalid",
      );
    case ERRNO.EINVAL:
      return fail(
        `the module refused ${ctx.op}${ctx.path ? ` of ${ctx.path}` : ""}; \`dmesg\` says why`,
        "refused",
      );
    case ERRNO.EBUSY:
      return fail(`${what} is busy`, "busy");
    case ERRNO.EAGAIN:
      return fail(`the module is busy; try again`, "busy");
    case ERRNO.ENOMEM:
      return fail(`out of memory`);
    case ERRNO.ENOTTY:
      return fail(
        "/dev/bdsnap does not know this request: the CLI and the loaded module do not match; " +
          "reload the module",
        "refused",
      );
    case ERRNO.ENOSYS:
      return make(
        `the bdsnap system calls are not there (${name}): the module is not loaded or is ` +
          "being unloaded; run `bdsnap load`",
        EXIT_NO_MODULE,
      );
    default:
      return other();
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
  if (e instanceof RestoreError) return fromRestoreError(e);
  if (isRuntimeError(e)) return fromRestoreError(ioError(e, ctx?.path ?? pathOf(e)));
  return null;
}

/** The runtime's file system errors a user can act on (others are bugs). */
const RUNTIME_ERRORS = [
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.NotCapable,
  Deno.errors.NotADirectory,
  Deno.errors.IsADirectory,
  Deno.errors.AlreadyExists,
  Deno.errors.FilesystemLoop,
  Deno.errors.Busy,
];

function isRuntimeError(e: unknown): e is Error {
  return RUNTIME_ERRORS.some((c) => e instanceof c);
}

/**
 * The path a runtime error is about. Deno puts it only in the text
 * (`…: readdir '/etc/passwd'`); it is read from there to name it, never to
 * classify the error.
 */
function pathOf(e: Error): string {
  return /'([^']+)'$/.exec(e.message)?.[1] ?? "a file";
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
