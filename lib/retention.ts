/**
 * The retention planner behind `bdsnap prune`: which sessions of the store
 * may go, under a policy, without losing a restore.
 *
 * Restoring to the state before session k reads sessions k..n of k's device
 * (lib/plan.ts), never an older one. So the planner removes, per device,
 * only the oldest sessions: a prefix of the chain. Every session left then
 * has exactly the chain it had before, and the planner's verdict on it
 * (exact, inexact, refused) and its plan are unchanged. That is the
 * invariant, by construction: pruning never makes a kept restore point
 * unrestorable or inexact, and never turns a refused one into an accepted
 * one.
 *
 * Within that rule:
 *
 * - A *restore point* is a session the planner accepts (exactly, or only
 *   with `acceptGap`), judged by {@linkcode restorability} itself, treating
 *   open sessions as if they had closed. Exact restore points are always
 *   newer than inexact ones (a gap at j makes every session up to j
 *   inexact), so counting the newest restore points counts exact ones first.
 *   Superseded sessions, and sessions cut off by a damaged one, are never
 *   restore points, so they never take a kept restore point's place.
 * - The newest `keep` restore points of each device (at least one: the
 *   newest restorable state is always kept) and everything newer stay. The
 *   newest must be exact: a device whose restore points are all inexact (a
 *   failed session, or a crash without write-ahead, in every chain) keeps
 *   all its sessions, as one without any restore point does.
 * - Open sessions and sessions the module holds live stay, and so does
 *   everything newer than them. A device without any restore point keeps
 *   all its sessions (for inspection; a newer closed session frees them).
 * - Below that, `olderThanMs` and `maxBytes` select sessions oldest first;
 *   without either, everything below is selected. Removal stops at the first
 *   session not selected.
 *
 * @example
 * ```ts
 * import { listSessions } from "./store.ts";
 * import { planRetention } from "./retention.ts";
 * const sessions = await listSessions("/snapshot", { liveSessions: new Set() });
 * const plan = planRetention(sessions, { keep: 3, olderThanMs: 30 * 86400e3 });
 * for (const k of plan.keep) console.log(k.session.id, k.reason, k.detail);
 * ```
 *
 * @module
 */

import { storeName } from "./format.ts";
import { sameIdentity } from "./identity.ts";
import { restorability } from "./plan.ts";
import { compareSessions, type Session } from "./store.ts";

/**
 * What to prune. Without `olderThanMs` and `maxBytes`, everything older than
 * the newest `keep` restore points goes; with them, `keep` is a floor.
 */
export interface RetentionPolicy {
  /** Restore points to keep per device, newest first (0 and 1 both keep the newest). */
  keep?: number;
  /** Select sessions that ended more than this many milliseconds ago. */
  olderThanMs?: number;
  /** Select sessions, oldest first, while the device's sessions take more bytes than this. */
  maxBytes?: number;
}

/** Options of {@linkcode planRetention}. */
export interface RetentionOptions {
  /** The present, ms since the epoch. Default `Date.now()`. */
  now?: number;
  /**
   * Ids the module has open now. Undefined: cannot tell (every session whose
   * meta.json says open is then `open` already, see lib/store.ts).
   */
  live?: ReadonlySet<string>;
  /** Ids of sessions a view reads (`bdsnap view`): kept, with every later one. */
  views?: ReadonlySet<string>;
  /** Bytes a session takes in the store. Default: its blocks.dat size. */
  bytesOf?: (s: Session) => number;
}

/** Why a session is kept. */
export type KeepReason =
  /** It is open (mounted now). */
  | "open"
  /** The module holds it open, whatever meta.json says. */
  | "live"
  /** A view reads it (`bdsnap view --list`). */
  | "view"
  /** The newest restore point of its device: always kept. */
  | "newest"
  /** One of the newest `keep` restore points. */
  | "keep"
  /** A kept restore point's restore reads it. */
  | "needed"
  /** No session of the device is a restore point: nothing of it is removed. */
  | "unrestorable"
  /** Its device's restore points are all inexact: nothing of it is removed. */
  | "inexact"
  /** Not selected by `olderThanMs` / `maxBytes`. */
  | "policy"
  /** An older session of the device stays, and only the oldest sessions are removed. */
  | "order";

/** A kept session and why. */
export interface KeptSession {
  /** The session. */
  session: Session;
  /** The reason. */
  reason: KeepReason;
  /** The reason in words, naming the sessions involved. */
  detail: string;
}

/** The decision for every session examined. */
export interface RetentionPlan {
  /** Sessions to remove, oldest first. */
  remove: Session[];
  /** Sessions kept, oldest first, with the reason. */
  keep: KeptSession[];
}

/**
 * The store name a session was recorded under (its directory name's device
 * part): what keys the chain of a session that has no recorded identity.
 */
export function chainKey(s: Session): string {
  return s.idParts?.name ?? (s.meta ? storeName(s.meta.device) : s.id);
}

/** The time a session ended (or started, if it never recorded an end), in ms. */
export function sessionEndMs(s: Session): number {
  const m = s.meta;
  if (m?.endTimeNs) return m.endTimeNs / 1e6;
  if (m?.mountTimeNs) return m.mountTimeNs / 1e6;
  return s.idParts ? s.idParts.timeUs / 1000 : 0;
}

/**
 * Group sessions by chain, each chain oldest first: by the device's stable
 * identity where meta.json records one (the same disk under several paths
 * is one chain, another disk at the same path another), else by store name.
 */
export function chainsOf(sessions: readonly Session[]): Session[][] {
  const byName = new Map<string, Session[]>();
  const byIdentity: Array<{ identity: string; sessions: Session[] }> = [];
  for (const s of sessions) {
    const identity = s.meta?.identity ?? "";
    if (identity !== "") {
      const chain = byIdentity.find((c) => sameIdentity(c.identity, identity));
      if (chain) chain.sessions.push(s);
      else byIdentity.push({ identity, sessions: [s] });
      continue;
    }
    const k = chainKey(s);
    const list = byName.get(k);
    if (list) list.push(s);
    else byName.set(k, [s]);
  }
  return [...byIdentity.map((c) => c.sessions), ...byName.values()].map((c) =>
    c.sort(compareSessions)
  );
}

/**
 * Decide which sessions to remove. `sessions` is the whole store (the
 * planner's verdicts need every session); `only`, when given, limits the
 * decision to these ids (one device's sessions, for `prune DEV`).
 */
export function planRetention(
  sessions: readonly Session[],
  policy: RetentionPolicy,
  options: RetentionOptions = {},
  only?: ReadonlySet<string>,
): RetentionPlan {
  const plan: RetentionPlan = { remove: [], keep: [] };
  for (const chain of chainsOf(sessions)) {
    if (only && !chain.some((s) => only.has(s.id))) continue;
    const decided = planChain(sessions, chain, policy, options);
    plan.remove.push(...decided.remove);
    plan.keep.push(...decided.keep);
  }
  plan.remove.sort(compareSessions);
  plan.keep.sort((a, b) => compareSessions(a.session, b.session));
  return plan;
}

function planChain(
  all: readonly Session[],
  chain: Session[],
  policy: RetentionPolicy,
  options: RetentionOptions,
): RetentionPlan {
  const n = chain.length;
  const viewed = (s: Session) => options.views?.has(s.id) ?? false;
  const held = (s: Session) =>
    s.state === "open" || (options.live?.has(s.id) ?? false) || viewed(s);
  // Restore points, judged by the restorer's own rules. An open session is
  // judged as if closed (so a mounted device keeps its history), but is not
  // itself counted: it may still fail.
  const points: number[] = [];
  let exact = false;
  for (let i = 0; i < n; i++) {
    if (held(chain[i])) continue;
    const kind = restorability(all, chain[i].id, { allowOpen: true }).kind;
    if (kind !== "refused") points.push(i);
    if (kind === "exact") exact = true;
  }
  const want = Math.max(1, policy.keep ?? 1);
  const kept = points.slice(-want); // the newest restore points, oldest first
  // Without an exact restore point nothing is removed: the newest state kept
  // must be one a restore gives back exactly (a failed or crashed session's
  // is not). A newer session that closes makes the older ones removable;
  // until then they are all the user has (bdsnap verify, --accept-gap).
  const floor = exact ? kept[0] : 0;
  const firstHeld = chain.findIndex(held);
  const limit = Math.min(floor, firstHeld < 0 ? n : firstHeld);

  const bytesOf = options.bytesOf ?? ((s: Session) => s.datSize);
  let total = chain.reduce((t, s) => t + bytesOf(s), 0);
  const byAge = policy.olderThanMs !== undefined;
  const bySize = policy.maxBytes !== undefined;
  const cutoff = (options.now ?? Date.now()) - (policy.olderThanMs ?? 0);
  const selected = (s: Session) =>
    (!byAge && !bySize) || (byAge && sessionEndMs(s) < cutoff) ||
    (bySize && total > policy.maxBytes!);

  let removed = 0;
  while (removed < limit && selected(chain[removed])) total -= bytesOf(chain[removed++]);

  const newest = exact ? chain[points[points.length - 1]] : null;
  const oldestKeptPoint = exact ? chain[kept[0]] : null;
  const keep: KeptSession[] = [];
  for (let i = removed; i < n; i++) {
    const s = chain[i];
    const why = (reason: KeepReason, detail: string) => keep.push({ session: s, reason, detail });
    if (s.state === "open") why("open", "still open (mounted)");
    else if (viewed(s)) why("view", "a view reads it (bdsnap view --list)");
    else if (held(s)) why("live", "the module holds it open");
    else if (newest === null && points.length > 0) {
      why(
        "inexact",
        "no session of its device restores exactly (only with --accept-gap); nothing of it " +
          "is removed until a newer session closes",
      );
    } else if (newest === null) {
      why("unrestorable", "no session of its device can be restored to; kept for inspection");
    } else if (s === newest) why("newest", "the newest restore point of its device");
    else if (i >= floor && kept.includes(i)) {
      why("keep", `one of the newest ${want} restore point(s) of its device (--keep)`);
    } else if (i > floor) {
      why("needed", `the restore to ${oldestKeptPoint!.id} reads it`);
    } else if (i === removed) why("policy", policyDetail(policy, s, cutoff, total));
    else if (!selected(s)) why("policy", policyDetail(policy, s, cutoff, total));
    else {
      why(
        "order",
        `older session ${chain[i - 1].id} is kept; only the oldest sessions are removed, so ` +
          `that no kept session's chain changes`,
      );
    }
  }
  return { remove: chain.slice(0, removed), keep };
}

function policyDetail(
  policy: RetentionPolicy,
  s: Session,
  cutoff: number,
  total: number,
): string {
  const parts: string[] = [];
  if (policy.olderThanMs !== undefined && sessionEndMs(s) >= cutoff) {
    parts.push("ended within --older-than");
  }
  if (policy.maxBytes !== undefined && total <= policy.maxBytes) {
    parts.push(`the device's sessions take ${total} bytes, within --max-size`);
  }
  return parts.length > 0 ? parts.join("; ") : "not selected by the policy";
}
