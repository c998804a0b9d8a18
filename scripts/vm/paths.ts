/**
 * Where the harness keeps things. The cache is project-local and git-ignored;
 * BDSNAP_VM_CACHE moves it (e.g. to a disk with more room).
 * @module
 */

/** Absolute path of the repository root. */
export const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The harness cache: kernels, initramfs images, module builds, run logs. */
export function cacheDir(): string {
  return Deno.env.get("BDSNAP_VM_CACHE") ?? `${REPO}/.cache/vm`;
}
