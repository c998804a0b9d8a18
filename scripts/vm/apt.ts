/**
 * Every apt look-up and install the harness makes goes through here, so that
 * none of them trusts stale lists. A new machine's image may carry lists
 * that are months old and lack a whole suite (bookworm-security, where the
 * 6.12 kernels are): such lists still answer, just wrongly.
 *
 * The rule: before a look-up, lists older than a day are updated; a look-up
 * that finds nothing updates and tries once more. Either way `apt-get
 * update` runs at most once per run (the environment carries that to the
 * harness's child processes). apt's own configuration is honoured, so
 * `APT_CONFIG` pointing at a private state directory (the fresh-machine
 * check does that) keeps the host's lists untouched.
 * @module
 */
import { isRoot, log, run } from "./_process.ts";

/** Lists older than this are refreshed before a look-up. */
const MAX_AGE_MS = 24 * 3600 * 1000;
/** Set in the environment once this run has updated, so child processes do not again. */
const UPDATED_ENV = "BDSNAP_APT_UPDATED";

/** apt could not give us what we need; the message says what failed. */
export class AptError extends Error {
  override name = "AptError";
}

function updatedThisRun(): boolean {
  return Deno.env.get(UPDATED_ENV) === "1";
}

/** The directory apt keeps its lists in (Dir::State::Lists), as configured. */
export async function listsDir(): Promise<string> {
  const r = await run("apt-config", ["shell", "D", "Dir::State::Lists/d"]);
  const m = /^D='(.*)'$/m.exec(r.stdout);
  return m ? m[1].replace(/\/$/, "") : "/var/lib/apt/lists";
}

/**
 * Age in ms of the newest Release file in a lists directory (apt's own when
 * not given); Infinity when there are none.
 */
export async function listsAge(dir?: string, now = Date.now()): Promise<number> {
  const lists = dir ?? await listsDir();
  let newest = 0;
  try {
    for await (const e of Deno.readDir(lists)) {
      if (!/_(In)?Release$/.test(e.name)) continue;
      const st = await Deno.stat(`${lists}/${e.name}`);
      newest = Math.max(newest, st.mtime?.getTime() ?? 0);
    }
  } catch {
    // no lists directory: as good as no lists
  }
  return newest === 0 ? Infinity : now - newest;
}

/**
 * Lines of `apt-get update`'s output that say a source failed. apt exits 0
 * when only some index files failed ("W: Failed to fetch"), so the exit code
 * alone misses a broken mirror.
 */
export function updateFailures(output: string): string[] {
  return output.split("\n").filter((l) => /^(Err:|E: |W: Failed to fetch|W: Some index)/.test(l));
}

/** `apt-get update`, at most once per run. Throws AptError saying what failed. */
export async function aptUpdate(why: string): Promise<void> {
  if (updatedThisRun()) return;
  if (!isRoot()) {
    throw new AptError(`apt's lists need an update (${why}), and apt-get update needs root`);
  }
  log(`apt-get update (${why})`);
  const r = await run("apt-get", ["update"], { env: { DEBIAN_FRONTEND: "noninteractive" } });
  // Marked even when it failed: a second try in the same run would fail the same way.
  Deno.env.set(UPDATED_ENV, "1");
  const failed = updateFailures(r.stdout + "\n" + r.stderr);
  if (r.code !== 0 || failed.length > 0) {
    throw new AptError(
      `apt-get update failed (exit ${r.code}): no network, or a mirror that does not answer?\n` +
        (failed.length > 0 ? failed : [(r.stderr || r.stdout).trim()]).join("\n"),
    );
  }
}

/** Update first when the lists are older than a day (once per run). */
export async function ensureFreshLists(): Promise<void> {
  if (updatedThisRun()) return;
  const age = await listsAge();
  if (age <= MAX_AGE_MS) return;
  const why = age === Infinity ? "there are none" : `they are ${(age / 3600_000).toFixed(0)} h old`;
  try {
    await aptUpdate(why);
  } catch (e) {
    // Old lists may still have what we want; the look-up says so if not.
    log(`${(e as Error).message}\n[vm] going on with the lists apt has`);
  }
}

/**
 * Look something up in apt's lists: on fresh lists, and once more after an
 * update when the first look finds nothing. `what` names it for the error.
 */
export async function aptLookup<T>(what: string, find: () => Promise<T | null>): Promise<T> {
  await ensureFreshLists();
  const first = await find();
  if (first !== null) return first;
  let updateError = "";
  if (!updatedThisRun()) {
    try {
      await aptUpdate(`${what} is not in them`);
    } catch (e) {
      updateError = `\n${(e as Error).message}`;
    }
    const second = await find();
    if (second !== null) return second;
  }
  const lists = await listsDir();
  throw new AptError(
    `${what} is not in apt's lists (${lists}), even after apt-get update; ` +
      `are Debian's suites for it among apt's sources?${updateError}`,
  );
}

/** apt-get install on fresh lists; a failure says which packages and why. */
export async function aptInstall(pkgs: string[]): Promise<void> {
  await ensureFreshLists();
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const args = ["install", "-y", "--no-install-recommends", ...pkgs];
  let r = await run("apt-get", args, { env });
  if (r.code !== 0 && !updatedThisRun()) {
    await aptUpdate(`apt-get install ${pkgs.join(" ")} failed`);
    r = await run("apt-get", args, { env });
  }
  if (r.code !== 0) {
    throw new AptError(`apt-get install ${pkgs.join(" ")} failed:\n${r.stderr.trim()}`);
  }
}

/** The version apt would install of a package, or null when it has none. */
export async function aptCandidate(
  pkg: string,
  env: Record<string, string> = {},
): Promise<string | null> {
  const r = await run("apt-cache", ["policy", pkg], { env });
  const version = /Candidate:\s*(\S+)/.exec(r.stdout)?.[1];
  return version && version !== "(none)" ? version : null;
}
