/**
 * Where the harness keeps things.
 *
 * - The work cache (module builds, initramfs images, run logs, which kernel
 *   a series resolved to) is project-local and git-ignored: `.cache/vm/`,
 *   or BDSNAP_VM_CACHE.
 * - The download cache (unpacked Debian kernel packages) is per machine and
 *   keyed by exact release, so a fresh clone, CI's included, does not fetch
 *   again what this machine already has: /var/cache/bdsnap when root,
 *   else inside the work cache, or BDSNAP_DOWNLOAD_CACHE.
 * @module
 */

/** Absolute path of the repository root. */
export const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The harness's work cache: module builds, initramfs images, run logs. */
export function cacheDir(): string {
  return Deno.env.get("BDSNAP_VM_CACHE") ?? `${REPO}/.cache/vm`;
}

/** The machine's cache of downloads, each under a name that holds its exact version. */
export function downloadCacheDir(): string {
  const set = Deno.env.get("BDSNAP_DOWNLOAD_CACHE");
  if (set) return set;
  return Deno.uid() === 0 ? "/var/cache/bdsnap" : `${cacheDir()}/downloads`;
}
