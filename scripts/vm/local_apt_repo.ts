/**
 * A file: apt repository for a guest that has no network: every package the
 * guest's apt would fetch to install `wanted`, downloaded on the host with
 * the guest system's own apt and dpkg status (the host's for Debian 12, a
 * chroot of its root for the others), then indexed with dpkg-scanpackages.
 *
 * The packages are kept per machine, per release, under their exact
 * versions (`<download cache>/apt-repos/<release>/`); a second run fetches
 * only what is missing. The guest points a sources.list.d entry at it
 * (`deb [trusted=yes] file:<dir> ./`), so `apt-get install` runs there as on
 * a server with a mirror.
 * @module
 */
import type { GuestSystem } from "./guest_root.ts";
import { inChroot } from "./build_chroot.ts";
import { log, run } from "./_process.ts";
import { downloadCacheDir } from "./paths.ts";

const UPDATED_ENV = "BDSNAP_GUEST_ROOT_APT_UPDATED";

/** The repository's directory for a release. */
export function repoDir(release: string): string {
  return `${downloadCacheDir()}/apt-repos/${release}`;
}

/** The sources.list line a guest uses for the repository in `dir`. */
export function sourcesLine(dir: string): string {
  return `deb [trusted=yes] file:${dir} ./`;
}

/**
 * Fetch what `wanted` needs on `sys` (package names, `name=version`, or
 * absolute paths of .deb files, whose dependencies count but which are not
 * put in the repository), and index the repository. Returns its directory.
 */
export async function localAptRepo(sys: GuestSystem, wanted: string[]): Promise<string> {
  const dir = repoDir(sys.release);
  await Deno.mkdir(`${dir}/partial`, { recursive: true });
  // Recommends are left out: the guest's apt skips those it cannot get.
  const args = [
    "install",
    "--download-only",
    "-y",
    "--no-install-recommends",
    "-o",
    `Dir::Cache::archives=${dir}`,
    ...wanted,
  ];
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  let r: { code: number; output: string };
  if (sys.root === "/") {
    const x = await run("apt-get", args, { env });
    r = { code: x.code, output: x.stdout + x.stderr };
  } else {
    if (Deno.env.get(UPDATED_ENV) !== "1") {
      log(`apt-get update in the ${sys.name} guest root`);
      const u = await inChroot(sys.root, ["apt-get", "update"], [], env);
      if (u.code !== 0) throw new Error(`apt-get update in ${sys.root} failed:\n${u.output}`);
      Deno.env.set(UPDATED_ENV, "1");
    }
    const debs = wanted.filter((w) => w.startsWith("/")).map((w) => w.slice(0, w.lastIndexOf("/")));
    r = await inChroot(sys.root, ["apt-get", ...args], [dir, ...new Set(debs)], env);
  }
  if (r.code !== 0) {
    throw new Error(`apt-get ${args.join(" ")} for ${sys.name} failed:\n${r.output.slice(-3000)}`);
  }
  const scan = await run("dpkg-scanpackages", ["-m", "."], { cwd: dir });
  if (scan.code !== 0) throw new Error(`dpkg-scanpackages in ${dir} failed:\n${scan.stderr}`);
  // Renamed into place: a guest booting meanwhile reads a whole index.
  const tmp = `${dir}/Packages.${Deno.pid}`;
  await Deno.writeTextFile(tmp, scan.stdout);
  await Deno.rename(tmp, `${dir}/Packages`);
  return dir;
}
