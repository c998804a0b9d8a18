/**
 * What the restorer writes into the store: the superseded.json marks of
 * sessions a restore undid, and the read-only mapping of a session's data
 * that the write pass hands to the target.
 *
 * @module
 */

import {
  close as closeFd,
  type Mapping,
  mapReadOnly,
  O_CLOEXEC,
  O_RDONLY,
  open as openFd,
} from "../ffi/libc.ts";
import { RestoreError } from "./errors.ts";
import { encodeSuperseded, FILES } from "./format.ts";
import { ioError } from "./io_error.ts";
import type { Session } from "./store_reader.ts";
import { dataEnds } from "./store_verify.ts";

/**
 * Mark `sessions` as undone by a restore to `restoredTo` (superseded.json,
 * mode 0600), so that no later restore targets their discarded pre-mount
 * states. Returns the sessions that could not be marked, with why.
 */
export async function markSuperseded(
  sessions: readonly Session[],
  restoredTo: string,
  time: Date = new Date(),
): Promise<Array<{ id: string; error: string }>> {
  const failed: Array<{ id: string; error: string }> = [];
  const text = encodeSuperseded({ restoredTo, time: time.toISOString() });
  for (const s of sessions) {
    try {
      await Deno.writeTextFile(`${s.dir}/${FILES.superseded}`, text, { mode: 0o600 });
    } catch (e) {
      failed.push({ id: s.id, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return failed;
}

/**
 * Map the records' data of `session` (its blocks.dat, read-only): the write
 * pass hands these pages straight to the target's writes. The file must
 * hold at least `dataBytes` (reading a mapping past its file's end raises
 * SIGBUS); `null` when the session has no data. {@linkcode unmap} it when
 * no write from it is in flight any more.
 */
export function mapSessionData(session: Session): Mapping | null {
  if (session.dataBytes === 0) return null;
  const path = `${session.dir}/${FILES.data}`;
  let fd: number;
  try {
    fd = openFd(path, O_RDONLY | O_CLOEXEC);
  } catch (e) {
    throw ioError(e, path);
  }
  try {
    const size = Deno.statSync(path).size;
    if (size < session.dataBytes) {
      throw new RestoreError(
        "damaged",
        `${session.id}/${FILES.data}: ${dataEnds(session, size).message}`,
      );
    }
    return mapReadOnly(fd, session.dataBytes);
  } catch (e) {
    throw ioError(e, `map ${path}`);
  } finally {
    closeFd(fd); // the mapping keeps the file
  }
}
