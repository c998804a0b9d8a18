/**
 * The debug kernel (`--kernel debug`): Debian's own kernel source package
 * (linux-source-6.12, else linux-source-6.1), fetched with `apt-get download`,
 * configured from `x86_64_defconfig` plus scripts/vm/debug_kernel.config
 * (the VM's drivers built in, KASAN, lockdep, kmemleak, debug objects, UBSAN)
 * and built under `nice -n 19` in the project cache:
 *
 *   .cache/vm/debug/<package>/ the unpacked source (one version; source.txt says which)
 *   .cache/vm/debug/build/    the O= build tree; also KDIR for kmod/
 *   .cache/vm/debug/root/     boot/vmlinuz-<release> and lib/modules/<release>
 *   .cache/vm/debug/build.log the last make's output
 *   .cache/vm/kernels/debug.json  the Kernel record, plus what it was built from
 *
 * Rebuilt only when the fragment (or this file's build recipe) changes, or
 * when `--refresh` finds a newer source package. Nothing is installed on the
 * host except the build tools (flex, bison, libelf-dev, bc).
 * @module
 */
import type { Kernel } from "./kernels.ts";
import { aptCandidate, AptError, aptInstall, aptLookup } from "./apt.ts";
import { haveCommand, log, run, runChecked } from "./_process.ts";
import { sha256Hex } from "./initramfs.ts";
import { cacheDir, REPO } from "./paths.ts";

/** Source packages to build from, preferred first. */
const SOURCE_PACKAGES = ["linux-source-6.12", "linux-source-6.1"];
const FRAGMENT = `${REPO}/scripts/vm/debug_kernel.config`;
/** Bump when the build recipe below changes in a way that needs a rebuild. */
const RECIPE = "1";
/**
 * Its command line. no5lvl: QEMU's `-cpu max` offers 5-level paging, and with
 * it this KASAN build reports a wild-memory-access in do_raw_spin_lock from
 * an interrupt in early boot (before any module), a known false positive
 * (LKML, "kasan: Fix false-positive wild-memory-access on x86 under 5-level
 * paging", June 2026). 4-level paging is what most hosts run anyway.
 */
const APPEND = "no5lvl";
/** Parallel make jobs; the build is always niced, the VMs must not starve. */
const JOBS = Deno.env.get("BDSNAP_KERNEL_JOBS") ?? "2";

/** The debug kernel's record: a Kernel plus what it was built from. */
interface DebugKernel extends Kernel {
  sourcePackage: string;
  configHash: string;
  /** Wall-clock seconds of the last full or incremental build. */
  buildSeconds: number;
}

function dirs() {
  const base = `${cacheDir()}/debug`;
  return {
    base,
    /** "<package> <version>" of the unpacked source. */
    stamp: `${base}/source.txt`,
    build: `${base}/build`,
    root: `${base}/root`,
    log: `${base}/build.log`,
    json: `${cacheDir()}/kernels/debug.json`,
  };
}

/** Return the debug kernel, building it when missing, stale or refreshed. */
export async function provisionDebugKernel(refresh = false): Promise<Kernel> {
  const d = dirs();
  const configHash = await sha256Hex(RECIPE + (await Deno.readTextFile(FRAGMENT)));
  const cached = await readRecord(d.json);
  let source = cached ? { pkg: cached.sourcePackage, version: cached.packageVersion } : null;
  if (refresh || !source) source = await newestSource();
  if (
    cached && cached.configHash === configHash && cached.sourcePackage === source.pkg &&
    cached.packageVersion === source.version
  ) return { ...cached, append: APPEND };

  await ensureBuildTools();
  const srcDir = await unpackSource(source.pkg, source.version);
  const started = performance.now();
  log(
    `building the debug kernel from ${source.pkg} ${source.version} ` +
      `(nice 19, -j${JOBS}; tens of minutes; log: ${d.log})`,
  );
  await Deno.writeTextFile(d.log, "");
  await configure(srcDir, d.build);
  await make(srcDir, d.build, ["bzImage", "modules"]);
  await make(srcDir, d.build, ["modules_prepare"]);
  const release = (await runChecked("make", ["-s", "-C", d.build, "kernelrelease"])).trim();
  await Deno.remove(d.root, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${d.root}/boot`, { recursive: true });
  // modules_install runs depmod: modules.dep, modules.builtin for modprobe.
  await make(srcDir, d.build, ["modules_install", `INSTALL_MOD_PATH=${d.root}`]);
  const vmlinuz = `${d.root}/boot/vmlinuz-${release}`;
  await Deno.copyFile(`${d.build}/arch/x86/boot/bzImage`, vmlinuz);
  const buildSeconds = Math.round((performance.now() - started) / 1000);
  log(`debug kernel ${release} built in ${(buildSeconds / 60).toFixed(1)} min`);

  const k: DebugKernel = {
    series: "debug",
    release,
    packageVersion: source.version,
    root: d.root,
    vmlinuz,
    headers: d.build,
    modules: `${d.root}/lib/modules/${release}`,
    append: APPEND,
    sourcePackage: source.pkg,
    configHash,
    buildSeconds,
  };
  await Deno.mkdir(`${cacheDir()}/kernels`, { recursive: true });
  await Deno.writeTextFile(d.json, JSON.stringify(k, null, 2) + "\n");
  return k;
}

async function readRecord(path: string): Promise<DebugKernel | null> {
  try {
    const k = JSON.parse(await Deno.readTextFile(path)) as DebugKernel;
    await Deno.stat(k.vmlinuz);
    return k;
  } catch {
    return null;
  }
}

/**
 * The preferred source package and its version, or a fallback. aptLookup
 * refreshes stale lists first (a new machine's image has no bookworm-security
 * lists), so the fallback is taken only when fresh lists lack the preferred one.
 */
async function newestSource(): Promise<{ pkg: string; version: string }> {
  const candidate = async (pkg: string) => {
    const version = await aptCandidate(pkg);
    return version ? { pkg, version } : null;
  };
  const [preferred, ...fallbacks] = SOURCE_PACKAGES;
  try {
    return await aptLookup(preferred, () => candidate(preferred));
  } catch (e) {
    if (!(e instanceof AptError)) throw e;
    for (const pkg of fallbacks) {
      const found = await candidate(pkg);
      if (found) {
        log(`${e.message}\n[vm] building the debug kernel from ${pkg} instead`);
        return found;
      }
    }
    throw e;
  }
}

/** Flex, bison, libelf (objtool) and bc, from apt when missing. */
async function ensureBuildTools(): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of [["flex", "flex"], ["bison", "bison"], ["bc", "bc"]]) {
    if (!(await haveCommand(cmd))) missing.push(pkg);
  }
  for (const [header, pkg] of [["gelf.h", "libelf-dev"], ["openssl/ssl.h", "libssl-dev"]]) {
    if ((await run("test", ["-e", `/usr/include/${header}`])).code !== 0) missing.push(pkg);
  }
  if (missing.length > 0) {
    log(`installing kernel build tools: ${missing.join(" ")}`);
    await aptInstall(missing);
  }
}

/**
 * Unpack the source package's tarball into the cache unless that version is
 * there already. A new version starts from an empty build tree: the tarball's
 * file times predate the old objects, so make would not see the changes.
 */
async function unpackSource(pkg: string, version: string): Promise<string> {
  const d = dirs();
  const tree = `${d.base}/${pkg}`;
  const have = await Deno.readTextFile(d.stamp).catch(() => "");
  if (have.trim() === `${pkg} ${version}`) return tree;
  log(`fetching ${pkg} ${version} with apt-get download`);
  await Deno.mkdir(d.base, { recursive: true });
  for await (const e of Deno.readDir(d.base)) {
    if (e.name.startsWith("linux-source-") || e.name === "build") {
      await Deno.remove(`${d.base}/${e.name}`, { recursive: true });
    }
  }
  const debs = await Deno.makeTempDir({ dir: d.base, prefix: "debs-" });
  try {
    await runChecked("apt-get", ["download", `${pkg}=${version}`], { cwd: debs });
    await runChecked("sh", [
      "-c",
      `dpkg-deb --fsys-tarfile "$1"/"$2"_*.deb | tar -xO "./usr/src/$2.tar.xz" | ` +
      `nice -n 19 xz -dc | tar -x -C "$3"`,
      "sh",
      debs,
      pkg,
      d.base,
    ]);
  } finally {
    await Deno.remove(debs, { recursive: true });
  }
  await Deno.writeTextFile(d.stamp, `${pkg} ${version}\n`);
  return tree;
}

/**
 * .config = x86_64_defconfig + the fragment, resolved by olddefconfig. Every
 * line of the fragment must survive: Kconfig silently drops a symbol whose
 * dependencies are not met, and a debug kernel without KASAN would pass
 * everything and prove nothing.
 */
async function configure(srcDir: string, build: string): Promise<void> {
  await Deno.mkdir(build, { recursive: true });
  await make(srcDir, build, ["x86_64_defconfig"]);
  const fragment = await Deno.readTextFile(FRAGMENT);
  const config = `${build}/.config`;
  await Deno.writeTextFile(config, fragment, { append: true });
  await make(srcDir, build, ["olddefconfig"]);
  const bad = configMismatches(fragment, await Deno.readTextFile(config));
  if (bad.length > 0) {
    throw new Error(`the debug kernel's config lost fragment lines:\n  ${bad.join("\n  ")}`);
  }
}

/** Fragment lines (`CONFIG_X=v` or `# CONFIG_X is not set`) the final .config does not honour. */
export function configMismatches(fragment: string, config: string): string[] {
  const values = new Map<string, string>();
  for (const line of config.split("\n")) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) values.set(m[1], m[2]);
  }
  const bad: string[] = [];
  for (const line of fragment.split("\n")) {
    const on = /^(CONFIG_\w+)=(.*)$/.exec(line);
    const off = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (on && values.get(on[1]) !== on[2]) {
      bad.push(`${line} (got ${values.get(on[1]) ?? "unset"})`);
    } else if (off && values.has(off[1]) && values.get(off[1]) !== "n") {
      bad.push(`${line} (got ${values.get(off[1])})`);
    }
  }
  return bad;
}

/** `nice -n 19 make -C src O=build -jN targets…`, output to build.log. */
async function make(srcDir: string, build: string, targets: string[]): Promise<void> {
  const log = dirs().log;
  const r = await run("sh", [
    "-c",
    `log=$1; shift; exec nice -n 19 make "$@" >>"$log" 2>&1`,
    "sh",
    log,
    "-C",
    srcDir,
    `O=${build}`,
    `-j${JOBS}`,
    ...targets,
  ]);
  if (r.code !== 0) {
    const tail = (await Deno.readTextFile(log)).split("\n").slice(-40).join("\n");
    throw new Error(`make ${targets.join(" ")} failed for the debug kernel (${log}):\n${tail}`);
  }
}
