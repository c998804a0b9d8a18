/**
 * The snapshot store: reading and checking sessions (./store_reader.ts),
 * verifying their data checksums (./store_verify.ts) and what the restorer
 * writes back (./store_writer.ts), under the one name importers have used.
 *
 * @example
 * ```ts
 * import { listSessions, verifySessionData } from "./store.ts";
 * for (const s of await listSessions("/snapshot", { liveSessions: new Set() })) {
 *   const problems = await verifySessionData(s);
 *   console.log(s.id, s.state, problems.length === 0 ? "ok" : problems[0].message);
 * }
 * ```
 *
 * @module
 */

export {
  compareSessions,
  DEFAULT_STORE_ROOT,
  failureText,
  listSessions,
  type ReadOptions,
  readSession,
  type RecordTable,
  type Session,
  type SessionState,
  sessionTimeNs,
  sortedOrder,
  type TornTail,
} from "./store_reader.ts";
export {
  type ProgressInfo,
  readFull,
  type VerifyOptions,
  verifySessionData,
} from "./store_verify.ts";
export { mapSessionData, markSuperseded } from "./store_writer.ts";
export { ioError } from "./io_error.ts";
// Named by the signatures above, so public too.
export type { Mapping } from "../ffi/libc.ts";
