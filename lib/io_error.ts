/**
 * Errors of Deno's file system API as {@linkcode RestoreError}s: classified
 * by their class (`Deno.errors.*`) and errno code, never by their text, and
 * worded to name the path and what was expected instead of the runtime's
 * "Not a directory (os error 20): readdir '…'".
 *
 * @module
 */

import { ERRNO, errnoDescription } from "../ffi/_errno.ts";
import { RestoreError, type RestoreErrorCode } from "./errors.ts";

/** The errno name of a runtime error (`"ENOENT"`, …), or `null` when it has none. */
export function errnoOf(e: unknown): string | null {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : null;
}

/** How one class of runtime error reads: its code, errno and the words after the path. */
interface Wording {
  code: RestoreErrorCode;
  errno: string | null;
  /** Appended to the subject: `": not found"`, `" is not a directory"`. */
  says: string;
}

function wording(e: unknown): Wording {
  const errno = errnoOf(e);
  const E = Deno.errors;
  if (e instanceof E.PermissionDenied || e instanceof E.NotCapable) {
    return { code: "permission", errno, says: ": permission denied (run as root)" };
  }
  if (e instanceof E.NotFound) {
    return { code: "not-found", errno: errno ?? "ENOENT", says: ": not found" };
  }
  if (e instanceof E.NotADirectory) {
    return { code: "invalid", errno: errno ?? "ENOTDIR", says: " is not a directory" };
  }
  if (e instanceof E.IsADirectory) {
    return { code: "invalid", errno: errno ?? "EISDIR", says: " is a directory, not a file" };
  }
  if (e instanceof E.AlreadyExists) {
    return { code: "invalid", errno: errno ?? "EEXIST", says: " already exists" };
  }
  if (e instanceof E.FilesystemLoop) {
    return {
      code: "invalid",
      errno: errno ?? "ELOOP",
      says: ": too many levels of symbolic links",
    };
  }
  if (e instanceof E.Busy) return { code: "busy", errno: errno ?? "EBUSY", says: " is busy" };
  if (e instanceof E.BrokenPipe) {
    return { code: "io", errno: errno ?? "EPIPE", says: ": the reading end went away (EPIPE)" };
  }
  if (errno !== null && ERRNO[errno] !== undefined) {
    return {
      code: "io",
      errno,
      says: `: ${errnoDescription(ERRNO[errno]).toLowerCase()} (${errno})`,
    };
  }
  // No errno to word it by: the runtime's text is all there is.
  return { code: "io", errno, says: `: ${e instanceof Error ? e.message : String(e)}` };
}

/**
 * Turn an error from Deno's file system API into a {@linkcode RestoreError}
 * about `what` (a noun phrase naming the path: `"store /snapshot"`,
 * `"/snapshot/s/meta.json"`). A RestoreError passes through unchanged.
 */
export function ioError(e: unknown, what: string): RestoreError {
  if (e instanceof RestoreError) return e;
  const w = wording(e);
  return new RestoreError(w.code, `${what}${w.says}`, [], false, w.errno);
}
