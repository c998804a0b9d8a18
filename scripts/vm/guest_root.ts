/**
 * The system a guest boots into, for tests that treat the guest as a server
 * of the kernel's own Debian release (the install test).
 *
 * Every other VM boots the host's root (Debian 12) read-only over 9p. That
 * serves Debian 12's 6.1 as a Debian 12 server would; Debian 13's kernels
 * (6.12.x+deb13, 6.12-rt, backported 7.x) need a Debian 13 userland to build
 * a module in the guest: gcc-14, and kbuild tools linked against glibc ≥
 * 2.38. So those boot a Debian 13 root of their own, made once per machine
 * with debootstrap in the download cache (`roots/trixie/`), separate from the
 * build chroot so that its packages are only those of a minimal server: no
 * headers, no compiler, no dkms until the test installs them.
 *
 * A root of its own has the kernel's linux-image package installed, as a
 * server running that kernel has; its headers come with the install.
 * @module
 */
import type { Kernel } from "./kernels.ts";
import { debianRelease, inChroot } from "./build_chroot.ts";
import { aptInstall } from "./apt.ts";
import { haveCommand, log, runChecked } from "./_process.ts";
import { downloadCacheDir } from "./paths.ts";

/** A guest's system: the host's root ("/"), or a root directory of its own. */
export interface GuestSystem {
  /** What an admin would call it: "Debian 12", "Debian 13". */
  name: string;
  /** Debian release codename. */
  release: string;
  /** The directory shared as the guest's root. */
  root: string;
}

/**
 * The Debian release a kernel's server runs: Debian 12 (the host's own) for
 * kernels without a "+debNN" suffix or with +deb12 (bookworm-security's
 * 6.12), else the release the suffix names.
 */
export function serverRelease(release: string): "bookworm" | "trixie" | "sid" {
  const n = Number(/\+deb(\d+)/.exec(release)?.[1] ?? 12);
  return n <= 12 ? "bookworm" : debianRelease(release);
}

const NAMES: Record<string, string> = {
  bookworm: "Debian 12",
  trixie: "Debian 13",
  sid: "Debian unstable",
};

/**
 * Packages of the root besides minbase: what a small server has (the tools
 * the guest's stage 2 and the test script use), and nothing the install
 * itself brings.
 */
const SERVER_PACKAGES = ["kmod", "e2fsprogs", "iproute2", "procps", "init-system-helpers"];

/** The suites a Debian 13 server takes its packages and kernels from. */
function sources(release: string): string {
  const suites = release === "trixie" ? "trixie trixie-updates trixie-backports" : release;
  const security = release === "trixie"
    ? `\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: trixie-security\n` +
      `Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`
    : "";
  return `Types: deb\nURIs: http://deb.debian.org/debian\nSuites: ${suites}\nComponents: main\n` +
    `Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n${security}`;
}

function rootDir(release: string): string {
  return `${downloadCacheDir()}/roots/${release}`;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** The release's server root, made on first use (a few minutes). */
async function ensureRoot(release: string): Promise<string> {
  const root = rootDir(release);
  if (await exists(`${root}/.complete`)) return root;
  if (!(await haveCommand("debootstrap"))) await aptInstall(["debootstrap"]);
  log(`debootstrap ${release} as a guest root (once per machine)`);
  const tmp = `${root}.new`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${downloadCacheDir()}/roots`, { recursive: true });
  await runChecked("nice", [
    "-n",
    "10",
    "debootstrap",
    "--variant=minbase",
    `--include=${SERVER_PACKAGES.join(",")}`,
    release,
    tmp,
    "http://deb.debian.org/debian",
  ]);
  await Deno.writeTextFile(`${tmp}/etc/apt/sources.list.d/debian.sources`, sources(release));
  await Deno.remove(`${tmp}/etc/apt/sources.list`).catch(() => {});
  await Deno.copyFile("/etc/resolv.conf", `${tmp}/etc/resolv.conf`).catch(() => {});
  await Deno.writeTextFile(`${tmp}/etc/hostname`, "bdsnap-vm\n");
  await Deno.writeTextFile(`${tmp}/.complete`, `${release}\n`);
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, root);
  return root;
}

/**
 * The kernel's own linux-image package, installed in the root on the host
 * (natively: about 40 s with its initramfs) as it is on a server running that
 * kernel. Its headers depend on it, so without it the guest's apt would
 * unpack it and build two initramfs images under emulation, minutes each.
 * Serialised by a lock: jobs of two kernels may share the root.
 */
/** The release a root was made for (its `.complete` stamp). */
function release(root: string): string {
  return Deno.readTextFileSync(`${root}/.complete`).trim();
}

async function installImage(root: string, k: Kernel): Promise<void> {
  const pkg = `linux-image-${k.release}`;
  const have = await inChroot(root, ["dpkg-query", "-W", "-f=${Status} ${Version}", pkg]);
  if (have.code === 0 && have.output === `install ok installed ${k.packageVersion}`) return;
  log(`installing ${pkg} ${k.packageVersion} in the guest root`);
  // debootstrap's lists cover the release alone, not its updates, security
  // and backports suites, where the kernels of the matrix are.
  const update = await inChroot(
    root,
    ["flock", "/var/lib/dpkg/bdsnap-image.lock", "apt-get", "update", "-q"],
    [],
    { DEBIAN_FRONTEND: "noninteractive" },
  );
  if (update.code !== 0) {
    throw new Error(`apt-get update in ${root} failed:\n${update.output.slice(-3000)}`);
  }
  const r = await inChroot(
    root,
    [
      "flock",
      "/var/lib/dpkg/bdsnap-image.lock",
      "apt-get",
      "install",
      "-y",
      "--no-install-recommends",
      // A backported kernel pre-depends on backports' linux-base.
      ...(k.packageVersion.includes("~bpo") ? ["-t", `${release(root)}-backports`] : []),
      `${pkg}=${k.packageVersion}`,
    ],
    [],
    { DEBIAN_FRONTEND: "noninteractive" },
  );
  if (r.code !== 0) {
    throw new Error(`installing ${pkg} in ${root} failed:\n${r.output.slice(-3000)}`);
  }
}

/** The system a server of this kernel runs, ready to boot. */
export async function guestSystem(k: Kernel): Promise<GuestSystem> {
  const release = serverRelease(k.release);
  if (release === "bookworm") return { name: NAMES[release], release, root: "/" };
  const root = await ensureRoot(release);
  await installImage(root, k);
  return { name: NAMES[release], release, root };
}
