/**
 * Debian kernels for the VM: image, modules and headers of the 6.1 and 6.12
 * series, downloaded with `apt-get download` and unpacked with `dpkg -x` into
 * the machine's download cache (paths.ts), once per exact version. Nothing
 * is installed into the host's /boot or /lib/modules.
 * @module
 */
import { provisionDebugKernel } from "./debug_kernel.ts";
import { aptLookup } from "./apt.ts";
import { log, run, runChecked } from "./_process.ts";
import { cacheDir, downloadCacheDir } from "./paths.ts";

/** The Debian kernel series we test on by default. */
export const SERIES = ["6.1", "6.12"] as const;
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

/** Package-name pattern of the unsigned image per series; the ABI name is group 1. */
const IMAGE_PATTERN: Record<DebianSeries, RegExp> = {
  "6.1": /^linux-image-(6\.1\.0-\d+-amd64)-unsigned$/,
  "6.12": /^linux-image-(6\.12\.\d+\+deb12-amd64)-unsigned$/,
};

/** Parse `--kernel` values: "6.1", "6.12" or "debug". */
export function parseSeries(value: string): Series {
  if ((SERIES as readonly string[]).includes(value) || value === "debug") return value as Series;
  throw new Error(`unknown kernel series '${value}': use one of ${SERIES.join(", ")}, debug`);
}

function kernelJson(series: Series): string {
  return `${cacheDir()}/kernels/${series}.json`;
}

/** Return the cached kernel of a series, provisioning (or building) it on first use. */
export async function provisionKernel(series: Series, refresh = false): Promise<Kernel> {
  if (series === "debug") return await provisionDebugKernel(refresh);
  if (!refresh) {
    try {
      const k = JSON.parse(await Deno.readTextFile(kernelJson(series))) as Kernel;
      await Deno.stat(k.vmlinuz);
      return k;
    } catch {
      // not cached yet
    }
  }
  const release = await newestRelease(series);
  const packageVersion = await candidateVersion(`linux-image-${release}-unsigned`);
  const k = await unpackedKernel(series, release, packageVersion);
  await Deno.mkdir(`${cacheDir()}/kernels`, { recursive: true });
  await Deno.writeTextFile(kernelJson(series), JSON.stringify(k, null, 2) + "\n");
  return k;
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
  packageVersion: string,
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
  try {
    await Deno.stat(`${root}/.complete`);
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
    const deps = await packageDepends(headersArch);
    const wanted = [
      `linux-image-${release}-unsigned=${packageVersion}`,
      headersArch,
      ...deps.filter((d) => d.startsWith("linux-headers-") || d.startsWith("linux-kbuild-")),
    ];
    await runChecked("apt-get", ["download", ...wanted], { cwd: debs });
    for await (const e of Deno.readDir(debs)) {
      if (e.name.endsWith(".deb")) await runChecked("dpkg", ["-x", `${debs}/${e.name}`, tree]);
    }
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
  return k;
}

/** The version apt would download of a package. */
async function candidateVersion(pkg: string): Promise<string> {
  const r = await run("apt-cache", ["policy", pkg]);
  const version = /Candidate:\s*(\S+)/.exec(r.stdout)?.[1];
  if (!version || version === "(none)") throw new Error(`apt has no candidate for ${pkg}`);
  return version;
}

/**
 * Newest ABI of the series whose image, headers and kbuild are all available.
 * Stale lists still list old 6.1 images but lack bookworm-security's 6.12:
 * aptLookup refreshes lists older than a day, and again when nothing is found.
 */
async function newestRelease(series: DebianSeries): Promise<string> {
  return await aptLookup(
    `a Debian ${series} kernel (${IMAGE_PATTERN[series].source})`,
    async () => {
      const releases = (await searchNames("^linux-image-6\\."))
        .map((n) => IMAGE_PATTERN[series].exec(n)?.[1])
        .filter((r): r is string => r !== undefined)
        .sort(compareVersions)
        .reverse();
      for (const release of releases) {
        const deps = await packageDepends(`linux-headers-${release}`);
        if (deps.some((d) => d.startsWith("linux-kbuild-"))) return release;
      }
      return null;
    },
  );
}

async function searchNames(pattern: string): Promise<string[]> {
  const r = await run("apt-cache", ["search", "--names-only", pattern]);
  return r.stdout.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

async function packageDepends(pkg: string): Promise<string[]> {
  const r = await run("apt-cache", ["depends", pkg]);
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
