/**
 * Build kmod/ out of tree against a provisioned kernel's headers, in a
 * per-kernel copy (.cache/vm/build/<release>/) so both kernels' objects can
 * coexist. Only changed files are copied, so make stays incremental.
 * @module
 */
import type { Kernel } from "./kernels.ts";
import { haveCommand, log, run } from "./_process.ts";
import { makeInChroot } from "./build_chroot.ts";
import { cacheDir, REPO } from "./paths.ts";

/**
 * The compiler the kernel was built with (CONFIG_CC_VERSION_TEXT's command),
 * when this host lacks it. Kbuild would fail with "not found" deep in
 * the probes: such a kernel is built in a chroot of its release instead.
 */
async function missingCompiler(k: Kernel): Promise<string | null> {
  const config = await Deno.readTextFile(`${k.headers}/.config`).catch(() => "");
  const cc = /^CONFIG_CC_VERSION_TEXT="(\S+)/m.exec(config)?.[1];
  return cc && !(await haveCommand(cc)) ? cc : null;
}

/** Build a module source directory for a kernel; returns the build directory. */
export async function buildModuleDir(
  k: Kernel,
  srcDir: string,
  buildDir: string,
): Promise<string> {
  await syncTree(srcDir, buildDir);
  const jobs = navigator.hardwareConcurrency;
  const cc = await missingCompiler(k);
  // A kernel built with a compiler this host lacks comes from a newer Debian release.
  const r = cc
    ? await makeInChroot(k, buildDir, jobs)
    : await run("make", ["-C", buildDir, `KDIR=${k.headers}`, `-j${jobs}`])
      .then((x) => ({ code: x.code, output: (x.stdout + x.stderr).trim() }));
  if (r.code !== 0) {
    const where = cc ? ` (in a chroot of its release: this host lacks ${cc})` : "";
    throw new Error(`module build failed for ${k.release}${where}:\n${r.output}`);
  }
  return buildDir;
}

/** Where the test fixture modules (tests/fixtures/modules) are built for a kernel. */
export function fixturesDir(k: Kernel): string {
  return `${cacheDir()}/build/${k.release}-fixtures`;
}

/** Build bdsnap.ko and the test fixture modules for a kernel; returns the .ko path. */
export async function buildKmod(k: Kernel): Promise<string> {
  log(`building kmod/ for ${k.release}`);
  const dir = await buildModuleDir(k, `${REPO}/kmod`, `${cacheDir()}/build/${k.release}`);
  await buildModuleDir(k, `${REPO}/tests/fixtures/modules`, fixturesDir(k));
  return `${dir}/bdsnap.ko`;
}

/** Copy src over dest, touching only files whose content changed. */
async function syncTree(src: string, dest: string): Promise<void> {
  await Deno.mkdir(dest, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    const s = `${src}/${e.name}`;
    const d = `${dest}/${e.name}`;
    if (e.isDirectory) {
      await syncTree(s, d);
    } else if (e.isFile && !/\.(o|ko|mod|mod\.c|cmd)$/.test(e.name)) {
      const data = await Deno.readFile(s);
      const old = await Deno.readFile(d).catch(() => null);
      if (!old || !sameBytes(old, data)) await Deno.writeFile(d, data);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
