/**
 * Kernels of newer Debian releases are built with that release's gcc, and
 * their kbuild tools link against its glibc: neither runs on our Debian 12
 * hosts. So the module is built for them in a chroot of the kernel's own
 * release (debootstrap, minbase), kept in the machine's download cache, with
 * the kernel's exact headers package installed there by that release's apt
 * (which brings its gcc and kbuild).
 *
 * Builds run in a private mount namespace: /proc, /dev and the build
 * directory are bind-mounted in at their own paths, and vanish with it.
 * @module
 */
import type { Kernel } from "./kernels.ts";
import { haveCommand, log, run, runChecked } from "./_process.ts";
import { aptInstall } from "./apt.ts";
import { downloadCacheDir } from "./paths.ts";

/** The Debian release a kernel comes from, by the "+debNN" of its release name. */
export function debianRelease(release: string): "trixie" | "sid" {
  const n = Number(/\+deb(\d+)/.exec(release)?.[1] ?? 0);
  return n === 13 ? "trixie" : "sid";
}

function chrootDir(release: string): string {
  return `${downloadCacheDir()}/chroots/${release}`;
}

/** Run a command inside the chroot, with /proc, /dev and `binds` mounted. */
export async function inChroot(
  root: string,
  command: string[],
  binds: string[] = [],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const mounts = ["/proc", "/dev", ...binds].map((d) =>
    `mkdir -p '${root}${d}' && mount --bind '${d}' '${root}${d}'`
  );
  const script = [...mounts, `exec chroot '${root}' "$@"`].join(" && ");
  const r = await run("unshare", [
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    script,
    "sh",
    ...command,
  ], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", ...env },
  });
  return { code: r.code, output: (r.stdout + r.stderr).trim() };
}

/** The release's chroot, made on first use (a few minutes; about 220 MB). */
async function ensureChroot(release: string): Promise<string> {
  const root = chrootDir(release);
  if (await Deno.stat(`${root}/.complete`).then(() => true, () => false)) return root;
  if (!(await haveCommand("debootstrap"))) await aptInstall(["debootstrap"]);
  log(`debootstrap ${release} for module builds (once per machine)`);
  const tmp = `${root}.new`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${downloadCacheDir()}/chroots`, { recursive: true });
  await runChecked("nice", [
    "-n",
    "10",
    "debootstrap",
    "--variant=minbase",
    release,
    tmp,
    "http://deb.debian.org/debian",
  ]);
  await Deno.copyFile("/etc/resolv.conf", `${tmp}/etc/resolv.conf`).catch(() => {});
  await Deno.writeTextFile(`${tmp}/.complete`, `${release}\n`);
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, root);
  return root;
}

/**
 * The chroot of the kernel's release with its exact headers installed;
 * returns the chroot and the KDIR inside it.
 */
export async function chrootFor(k: Kernel): Promise<{ root: string; kdir: string }> {
  const release = debianRelease(k.release);
  const root = await ensureChroot(release);
  const pkg = `linux-headers-${k.release}`;
  const have = await inChroot(root, ["dpkg-query", "-W", "-f=${Version}", pkg]);
  if (have.code !== 0 || have.output !== k.packageVersion) {
    log(`installing ${pkg} ${k.packageVersion} in the ${release} chroot`);
    if (release === "trixie") {
      // Point releases' kernels are in -updates and -security, backported 7.x in -backports.
      await Deno.writeTextFile(
        `${root}/etc/apt/sources.list.d/kernels.list`,
        [
          "deb http://deb.debian.org/debian trixie-updates main",
          "deb http://deb.debian.org/debian trixie-backports main",
          "deb http://deb.debian.org/debian-security trixie-security main",
          "",
        ].join("\n"),
      );
    }
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    for (
      const cmd of [
        ["apt-get", "update"],
        [
          "apt-get",
          "install",
          "-y",
          "--no-install-recommends",
          `${pkg}=${k.packageVersion}`,
          "make",
        ],
      ]
    ) {
      const r = await inChroot(root, cmd, [], env);
      if (r.code !== 0) {
        throw new Error(
          `${cmd.join(" ")} in the ${release} chroot failed:\n${r.output.slice(-3000)}`,
        );
      }
    }
  }
  return { root, kdir: `/usr/src/linux-headers-${k.release}` };
}

/** make in the chroot, with the build directory mounted at its own path. */
export async function makeInChroot(
  k: Kernel,
  buildDir: string,
  jobs: number,
): Promise<{ code: number; output: string }> {
  const { root, kdir } = await chrootFor(k);
  return await inChroot(
    root,
    ["make", "-C", buildDir, `KDIR=${kdir}`, `-j${jobs}`],
    [buildDir],
  );
}
