/**
 * What `--session` accepts: a full id or session directory, `latest`, a
 * number (the session's place in its device's chain, 1 = oldest, the `#`
 * column of `bdsnap sessions`), or a unique prefix of an id.
 * @module
 */

import { CliError, EXIT_FAILED } from "./errors.ts";
import { sameIdentity } from "../../lib/identity.ts";
import { chainsOf } from "../../lib/retention.ts";
import { readOneSession, readStore } from "./store_view.ts";
import type { Session } from "../../lib/store.ts";

/** Each session's place in its device's chain, 1 = oldest. */
export function chainNumbers(sessions: readonly Session[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const chain of chainsOf(sessions)) chain.forEach((s, i) => out.set(s.id, i + 1));
  return out;
}

/**
 * The session id `spec` names. `device` (the recorded path) narrows `latest`,
 * numbers and prefixes to that device's chain, and `identity` (the device's
 * stable identity now) to the chain that recorded it; without either they
 * need the store to hold one device only.
 */
export function resolveSessionSpec(
  sessions: readonly Session[],
  spec: string,
  device: string | undefined,
  identity?: string,
): string {
  const id = spec.includes("/") ? spec.replace(/\/+$/, "").replace(/^.*\//, "") : spec;
  if (sessions.some((s) => s.id === id)) return id;
  const ofDevice = (s: Session) =>
    identity !== undefined && s.meta?.identity
      ? sameIdentity(s.meta.identity, identity)
      : s.meta?.device === device;
  const chains = chainsOf(sessions).filter((c) =>
    (device === undefined && identity === undefined) || c.some(ofDevice)
  );
  const fail = (why: string) => new CliError(`--session ${spec}: ${why}`, EXIT_FAILED);
  const oneChain = (): Session[] => {
    if (chains.length === 1) return chains[0];
    throw fail(
      chains.length === 0
        ? "no sessions of that device"
        : "the store holds several devices: name the device too",
    );
  };
  if (spec === "latest") return oneChain()[oneChain().length - 1].id;
  if (/^\d+$/.test(spec)) {
    const chain = oneChain();
    const n = Number(spec);
    if (n < 1 || n > chain.length) {
      throw fail(`the device has sessions 1 to ${chain.length} (\`bdsnap sessions\`, column #)`);
    }
    return chain[n - 1].id;
  }
  const matches = chains.flat().filter((s) => s.id.startsWith(id));
  if (matches.length === 1) return matches[0].id;
  if (matches.length === 0) {
    throw new CliError(`no session ${spec} in the store: \`bdsnap sessions\` lists them`);
  }
  throw fail(
    `ambiguous: ${matches.length} sessions start with it (${
      matches.slice(0, 3).map((s) => s.id).join(", ")
    }${matches.length > 3 ? ", …" : ""})`,
  );
}

/**
 * Read the one session `spec` names, in any form `--session` accepts. A
 * directory or a full id is read on its own (fast on a large store); the
 * other forms need the whole store.
 */
export async function readSessionSpec(
  root: string,
  spec: string,
  device?: string,
): Promise<Session> {
  if (spec.includes("/") || await isDir(`${root}/${spec}`)) return readOneSession(root, spec);
  const sessions = await readStore(root);
  const id = resolveSessionSpec(sessions, spec, device);
  return sessions.find((s) => s.id === id)!;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false; // not there or not readable: the store reader says which
  }
}
