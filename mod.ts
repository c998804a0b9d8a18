/**
 * bdsnap as a library: the snapshot store format, the store reader, the
 * chain planner and the applier (restore and export), for programs such as
 * backup tools and tests that need them without the CLI.
 *
 * @example
 * ```ts
 * import { applyRestore, listSessions, planRestore } from "@bdsnap/bdsnap";
 * const sessions = await listSessions("/snapshot", { liveSessions: new Set() });
 * const plan = planRestore(sessions, "dev_vdb_20261122T072301.123456Z");
 * await applyRestore(plan, { target: "/var/tmp/copy-of-vdb.img" });
 * ```
 *
 * @module
 */

// The restorer: store format, reader, planner, applier.
export * from "./lib/format.ts";
export * from "./lib/errors.ts";
export * from "./lib/store.ts";
export * from "./lib/plan.ts";
export * from "./lib/apply.ts";
export * from "./lib/export.ts";
export * from "./lib/target.ts";
export * from "./lib/retention.ts";
export { type Crc32c, crc32c } from "./lib/crc32c.ts";
// The pool verifySessionData can use (VerifyOptions.pool).
export { CrcPool } from "./lib/crc_pool.ts";
export type { CrcAnswer } from "./lib/crc_worker.ts";
