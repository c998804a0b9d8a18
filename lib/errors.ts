/**
 * The error type of the store reader, the chain planner and the applier, and
 * the problem records they report.
 *
 * @module
 */

/** One thing wrong with a session, located as precisely as possible. */
export interface Problem {
  /** Session id, when the problem belongs to one. */
  session?: string;
  /** File name inside the session directory (`blocks.map`, …), when known. */
  file?: string;
  /** Byte offset in that file, when known. */
  offset?: number;
  /** What is wrong. */
  message: string;
}

/** Format a problem as one line: `SESSION/FILE at offset N: message`. */
export function formatProblem(p: Problem): string {
  const where = [p.session, p.file].filter((s) => s !== undefined && s !== "").join("/");
  const at = p.offset !== undefined ? ` at offset ${p.offset}` : "";
  return where === "" && at === "" ? p.message : `${where}${at}: ${p.message}`;
}

/** Why a restore, export or verify refused or failed. */
export type RestoreErrorCode =
  /** A session, device or file named by the caller does not exist. */
  | "not-found"
  /** A session the operation needs breaks the store format or its checksums. */
  | "damaged"
  /** A session the operation needs lacks files (it never got going). */
  | "incomplete"
  /** A session the operation needs is still open. */
  | "open"
  /** A session the operation needs failed (copy-on-write stopped). */
  | "failed"
  /** A session of the chain is missing from the store. */
  | "missing"
  /** A session of the chain was cut short by a crash, without write-ahead durability. */
  | "interrupted"
  /** A later session saw writes outside any session: the chain is not exact. */
  | "unmounted-writes"
  /** A restore to an earlier session undid the session's changes (superseded.json). */
  | "superseded"
  /** A session that may belong to the chain is from another device path. */
  | "ambiguous"
  /** The target's size differs from the recorded device size. */
  | "size"
  /** The target is not the recorded device (`force` overrides this one). */
  | "identity"
  /** The target is mounted or held open by someone else. */
  | "busy"
  /** The target is activated for snapshots; it must be deactivated first. */
  | "activated"
  /** Permission denied on the store or the target. */
  | "permission"
  /** The caller asked for something that cannot be done. */
  | "invalid"
  /** An I/O error, or data read back does not match what was written. */
  | "io";

/** A refusal or failure, with a one-line message and the problems behind it. */
export class RestoreError extends Error {
  /** What kind of refusal or failure this is. */
  readonly code: RestoreErrorCode;
  /** The problems found, each with file and offset when known. */
  readonly problems: Problem[];
  /**
   * Whether the refusal is only that the result would not be provably exact
   * (a gap in the chain): the planner's `acceptGap` option lets it through.
   */
  readonly acceptable: boolean;
  /** The errno name behind an I/O failure (`"ENOENT"`, `"EIO"`, …), else `null`. */
  readonly errno: string | null;
  /**
   * Make a refusal or failure.
   * @param code what kind it is
   * @param message one line for the user
   * @param problems the problems behind it
   * @param acceptable whether `acceptGap` lets it through
   * @param errno the errno name, for I/O failures
   */
  constructor(
    code: RestoreErrorCode,
    message: string,
    problems: Problem[] = [],
    acceptable = false,
    errno: string | null = null,
  ) {
    super(message);
    this.name = "RestoreError";
    this.code = code;
    this.problems = problems;
    this.acceptable = acceptable;
    this.errno = errno;
  }
}
