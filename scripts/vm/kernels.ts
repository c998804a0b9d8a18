/**
 * Debian kernels for the VM: image, modules and headers, downloaded with
 * `apt-get download` and unpacked with `dpkg -x` into the machine's download
 * cache (paths.ts), once per exact version. Nothing is installed into the
 * host's /boot or /lib/modules.
 *
 * 6.1 and 6.12 come from the host's own apt (Debian 12 and its security
 * suite); 6.12-rt and newest from trixie, trixie-backports and sid through a
 * private apt state (debian_releases.ts).
 * @module
 */
import { provisionDebugKernel } from "./debug_kernel.ts";
import { aptCandidate, AptError, aptLookup } from "./apt.ts";
import { privateAptEnv } from "./debian_releases.ts";
import { log, run, runChecked } from "./_process.ts";
import { cacheDir, downloadCacheDir } from "./paths.ts";

/**
 * The Debian kernel series of the matrix, every one a default of `deno task
 * test`. 6.12-rt and newest (and 6.12 when Debian 13's is the newer) are
 * built in a chroot of the kernel's own release (build_chroot.ts).
 */
export const SERIES = ["6.1", "6.12", "6.12-rt", "newest"] as const;
type DebianSeries = typeof SERIES[number];
/**
 * A kernel `--kernel` accepts: a Debian series, or "debug", our own build of
 * Debian's kernel source with KASAN, lockdep and friends (debug_kernel.ts).
 * The debug kernel is never among the defaults: it is slow to build and boot.
 */
export type Series = DebianSeries | "debug";

/** A provisioned kernel. All paths are absolute. */
/**
 * How many times longer things take on a kernel than on Debian's own under
 * TCG: 6 on the debug kernel (KASAN, lockdep, kmemleak…), else 1. VM time
 * limits and the guest's hang detectors are multiplied by it.
 */
export function slowFactor(k: Pick<Kernel, "series">): number {
  return k.series === "debug" ? 6 : 1;
}

export interface Kernel {
  series: Series;
  /** `uname -r` of the kernel, e.g. 6.12.117+deb12-amd64. */
  release: string;
  /** Debian package version of the image. */
  packageVersion: string;
  root: string;
  vmlinuz: string;
  /** Directory to pass as KDIR to kbuild. */
  headers: string;
  /** The kernel's /lib/modules/<release>, with modules.dep. */
  modules: string;
  /** Kernel command line this kernel always boots with (the debug kernel's). */
  append?: string;
}

/**
 * Where each series' images come from: package-name patterns (the ABI name
 * is group 1), each from the host's apt or the private apt state of newer
 * releases (`next`). A series with two sources takes the higher release:
 * 6.12 is Debian 12's security suite or Debian 13, whichever is newer.
 * `newest` is the highest 7.x or later of trixie-backports and sid.
 */
interface ImageSource {
  pattern: RegExp;
  next: boolean;
}
const IMAGE: Record<DebianSeries, ImageSource[]> = {
  "6.1": [{ pattern: /^linux-image-(6\.1\.0-\d+-amd64)-unsigned$/, next: false }],
  "6.12": [
    { pattern: /^linux-image-(6\.12\.\d+\+deb12-amd64)-unsigned$/, next: false },
    { pattern: /^linux-image-(6\.12\.\d+\+deb13(?:\.\d+)?-amd64)-unsigned$/, next: true },
  ],
  "6.12-rt": [{
    pattern: /^linux-image-(6\.12\.\d+\+deb13(?:\.\d+)?-rt-amd64)-unsigned$/,
    next: true,
  }],
  "newest": [{
    pattern: /^linux-image-((?:[7-9]|\d\d)\.\d+\.\d+\+deb\d+(?:\.\d+)?-amd64)(?:-unsigned)?$/,
    next: true,
  }],
};

/**
 * Series resolved afresh on every run (not from the cached choice): those
 * fed by the newer releases, where a new kernel appears without notice.
 */
function resolvesAfresh(series: DebianSeries): boolean {
  return IMAGE[series].some((src) => src.next);
}

/** Parse `--kernel` values: a series of SERIES, or "debug". */
export function parseSeries(value: string): Series {
  const known: readonly string[] = [...SERIES, "debug"];
  if (known.includes(value)) return value as Series;
  throw new Error(`unknown kernel series '${value}': use one of ${known.join(", ")}`);
}

function kernelJson(series: Series): string {
  return `${cacheDir()}/kernels/${series}.json`;
}

/** Return the cached kernel of a series, provisioning (or building) it on first use. */
export async function provisionKernel(series: Series, refresh = false): Promise<Kernel> {
  if (series === "debug") return await provisionDebugKernel(refresh);
  if (!refresh && !resolvesAfresh(series)) {
    try {
      const k = JSON.parse(await Deno.readTextFile(kernelJson(series))) as Kernel;
      await Deno.stat(k.vmlinuz);
      return k;
    } catch {
      // not cached yet
    }
  }
  let best: { release: string; image: string; apt: AptSource } | null = null;
  for (const src of IMAGE[series]) {
    const apt = await aptSource(src);
    const found = await newestRelease(series, src, apt);
    if (!best || compareVersions(found.release, best.release) > 0) best = { ...found, apt };
  }
  const { release, image, apt } = best!;
  const packageVersion = await candidateVersion(image, apt);
  const k = await unpackedKernel(series, release, image, packageVersion, apt);
  await Deno.mkdir(`${cacheDir()}/kernels`, { recursive: true });
  await Deno.writeTextFile(kernelJson(series), JSON.stringify(k, null, 2) + "\n");
  return k;
}

/** Which apt a series comes from: the environment apt-get and apt-cache run with. */
interface AptSource {
  env: Record<string, string>;
  /** The host's apt, which aptLookup refreshes when stale. */
  host: boolean;
}

async function aptSource(src: ImageSource): Promise<AptSource> {
  if (!src.next) return { env: {}, host: true };
  return { env: await privateAptEnv(), host: false };
}

/**
 * The kernel's packages unpacked in the machine's download cache, under the
 * exact release and package version: fetched only when not there yet.
 * Unpacked beside, then renamed into place, so a crash or a second
 * harness never leaves a half tree under the final name.
 */
async function unpackedKernel(
  series: DebianSeries,
  release: string,
  image: string,
  packageVersion: string,
  apt: AptSource,
): Promise<Kernel> {
  const root = `${downloadCacheDir()}/kernels/${release}_${packageVersion}`;
  const k: Kernel = {
    series,
    release,
    packageVersion,
    root,
    vmlinuz: `${root}/boot/vmlinuz-${release}`,
    headers: `${root}/usr/src/linux-headers-${release}`,
    modules: `${root}/lib/modules/${release}`,
  };
  // Since 7.x (merged /usr) the kernel lies beside its modules.
  const atModules = `${k.modules}/vmlinuz`;
  try {
    await Deno.stat(`${root}/.complete`);
    if (await exists(atModules)) k.vmlinuz = atModules;
    return k;
  } catch {
    // not on this machine yet
  }
  log(`provisioning Debian kernel ${release} (${packageVersion})`);
  await Deno.mkdir(`${downloadCacheDir()}/kernels`, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: `${downloadCacheDir()}/kernels`, prefix: ".new-" });
  try {
    const debs = `${tmp}/debs`;
    const tree = `${tmp}/tree`;
    await Deno.mkdir(debs);
    await Deno.mkdir(tree);
    const headersArch = `linux-headers-${release}`;
    const kbuild = (await packageDepends(headersArch, apt))
      .filter((d) => d.startsWith("linux-headers-") || d.startsWith("linux-kbuild-"));
    // Since 7.x the image is a shell: the kernel and its modules are packages of their own.
    const parts = await kernelParts(image, release, apt);
    const wanted = [`${image}=${packageVersion}`, ...parts, headersArch, ...kbuild];
    await runChecked("apt-get", ["download", ...wanted], { cwd: debs, env: apt.env });
    for await (const e of Deno.readDir(debs)) {
      if (e.name.endsWith(".deb")) await runChecked("dpkg", ["-x", `${debs}/${e.name}`, tree]);
    }
    // Releases after bookworm ship merged /usr: modules under usr/lib/modules.
    await Deno.symlink("usr/lib", `${tree}/lib`).catch(() => {});
    // Debian's arch Makefile includes the common tree by absolute path; point it at ours.
    const mk = `${tree}/usr/src/linux-headers-${release}/Makefile`;
    await Deno.writeTextFile(
      mk,
      (await Deno.readTextFile(mk)).replaceAll("/usr/src/", `${root}/usr/src/`),
    );
    await runChecked("depmod", ["-b", tree, release]);
    await Deno.writeTextFile(`${tree}/.complete`, `${release} ${packageVersion}\n`);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.rename(tree, root);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  if (await exists(atModules)) k.vmlinuz = atModules;
  return k;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** The packages of a kernel that depend on each other by release: image → binary → modules. */
async function kernelParts(image: string, release: string, apt: AptSource): Promise<string[]> {
  const parts = new Set<string>();
  const pending = [image];
  for (let p = pending.pop(); p; p = pending.pop()) {
    for (const d of await packageDepends(p, apt)) {
      if (d.endsWith(`-${release}`) && /^linux-(binary|modules)-/.test(d) && !parts.has(d)) {
        parts.add(d);
        pending.push(d);
      }
    }
  }
  return [...parts];
}

/** The version apt would download of a package. */
async function candidateVersion(pkg: string, apt: AptSource): Promise<string> {
  const version = await aptCandidate(pkg, apt.env);
  if (!version) throw new Error(`apt has no candidate for ${pkg}`);
  return version;
}

/**
 * Newest ABI of the series whose image, headers and kbuild are all
 * available, and its image package (the unsigned one where there is one).
 * Stale host lists still list old 6.1 images but lack bookworm-security's
 * 6.12: aptLookup refreshes lists older than a day, and again when nothing
 * is found. The private lists of newer releases are refreshed at each run.
 */
async function newestRelease(
  series: DebianSeries,
  { pattern }: ImageSource,
  apt: AptSource,
): Promise<{ release: string; image: string }> {
  const find = async () => {
    const names = await searchNames("^linux-image-[0-9]", apt);
    const releases = [...new Set(names.map((n) => pattern.exec(n)?.[1]))]
      .filter((r): r is string => r !== undefined)
      .sort(compareVersions)
      .reverse();
    for (const release of releases) {
      const deps = await packageDepends(`linux-headers-${release}`, apt);
      if (!deps.some((d) => d.startsWith("linux-kbuild-"))) continue;
      const unsigned = `linux-image-${release}-unsigned`;
      return { release, image: names.includes(unsigned) ? unsigned : `linux-image-${release}` };
    }
    return null;
  };
  const what = `a Debian ${series} kernel (${pattern.source})`;
  if (apt.host) return await aptLookup(what, find);
  const found = await find();
  if (!found) throw new AptError(`${what} is not in the lists of trixie, trixie-backports and sid`);
  return found;
}

async function searchNames(pattern: string, apt: AptSource): Promise<string[]> {
  const r = await run("apt-cache", ["search", "--names-only", pattern], { env: apt.env });
  return r.stdout.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

async function packageDepends(pkg: string, apt: AptSource): Promise<string[]> {
  const r = await run("apt-cache", ["depends", pkg], { env: apt.env });
  if (r.code !== 0) return [];
  return r.stdout.split("\n")
    .map((l) => /^\s*\|?Depends:\s*(\S+)/.exec(l)?.[1])
    .filter((d): d is string => d !== undefined && !d.startsWith("<"));
}

/** Compare dotted/dashed version strings numerically, part by part. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+]/);
  const pb = b.split(/[.\-+]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    const nx = Number(x);
    const ny = Number(y);
    const c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}
