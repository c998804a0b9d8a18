/**
 * The one way every command turns the DEV a user typed into the device path
 * the store recorded: made absolute, and matched through symbolic links
 * (/dev/disk/by-id/…, a link to an image file) to the path the sessions were
 * recorded under.
 * @module
 */

import { absolutePath } from "./activation.ts";
import { chainKey, sessionDevice } from "./store_view.ts";
import { storeName } from "../../lib/format.ts";
import { deviceIdentity, sameIdentity } from "../../lib/identity.ts";
import type { Session } from "../../lib/store.ts";

/**
 * The device path as the sessions recorded it, for a path the user typed:
 * the same absolute path, else a recorded path that resolves to the same
 * file; else the absolute path.
 */
export async function resolveDevice(dev: string, sessions: readonly Session[]): Promise<string> {
  const path = absolutePath(dev);
  const recorded = [...new Set(sessions.map((s) => s.meta?.device).filter((d) => d !== undefined))];
  if (recorded.includes(path)) return path;
  const real = await Deno.realPath(path).catch(() => null);
  if (real !== null) {
    for (const d of recorded) {
      if ((await Deno.realPath(d).catch(() => null)) === real) return d;
    }
  }
  return path;
}

/** The stable identity of the device `dev` names now (lib/identity.ts), if it has one. */
export function identityOf(dev: string): string | undefined {
  return deviceIdentity(absolutePath(dev)) ?? undefined;
}

/**
 * The sessions of the device `dev` names: those that recorded its stable
 * identity, under any path; those with none, by its recorded path; a
 * session that lost its meta.json, by the store name in its id. All of
 * them when `dev` is undefined.
 */
export async function sessionsOfDevice(
  sessions: readonly Session[],
  dev: string | undefined,
): Promise<Session[]> {
  if (dev === undefined) return [...sessions];
  const path = await resolveDevice(dev, sessions);
  const identity = identityOf(dev);
  const names = new Set([storeName(path), storeName(absolutePath(dev))]);
  return sessions.filter((s) => {
    if (s.meta === null) return names.has(chainKey(s));
    if (identity !== undefined && s.meta.identity !== "") {
      return sameIdentity(s.meta.identity, identity);
    }
    return sessionDevice(s) === path;
  });
}
