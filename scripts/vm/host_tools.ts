/**
 * Host tools the harness and the guest need, installed from Debian's apt
 * when missing. The guest runs the host's binaries (the host root is its
 * lower layer), so guest-side tools such as mkfs.xfs and fio come from here too.
 * @module
 */
import { aptInstall } from "./apt.ts";
import { haveCommand, isRoot, log, run } from "./_process.ts";

/** Command → Debian package that provides it. */
const TOOLS: Record<string, string> = {
  "qemu-system-x86_64": "qemu-system-x86",
  busybox: "busybox-static",
  cpio: "cpio",
  depmod: "kmod",
  "mkfs.ext4": "e2fsprogs",
  "mkfs.xfs": "xfsprogs",
  "mkfs.btrfs": "btrfs-progs",
  "mkfs.vfat": "dosfstools",
  fio: "fio",
  dmsetup: "dmsetup",
  losetup: "mount",
  xz: "xz-utils",
  zstd: "zstd",
  make: "make",
  "gcc-12": "gcc-12",
  setpriv: "util-linux",
  tmux: "tmux",
  sfdisk: "fdisk",
  python3: "python3",
  openssl: "openssl",
  sha256sum: "coreutils",
  // The coverage tests stack LUKS and LVM on activated disks (issue 20).
  cryptsetup: "cryptsetup-bin",
  pvcreate: "lvm2",
  lvm: "lvm2",
};

let checked = false;

/** Make sure every tool is present; install the missing ones as root, or explain. */
export async function ensureHostTools(): Promise<void> {
  if (checked) return;
  const missing: string[] = [];
  for (const [cmd, pkg] of Object.entries(TOOLS)) {
    if (!(await haveCommand(cmd))) missing.push(pkg);
  }
  // busybox must be the static build: it runs inside the initramfs.
  if (!missing.includes("busybox-static")) {
    const r = await run("dpkg-query", ["-W", "-f=${Status}", "busybox-static"]);
    if (!r.stdout.includes("install ok installed")) missing.push("busybox-static");
  }
  if (missing.length > 0) {
    const pkgs = [...new Set(missing)];
    if (!isRoot()) {
      throw new Error(
        `missing host packages: ${pkgs.join(" ")}\n` +
          `install them with: sudo apt-get install -y ${pkgs.join(" ")}`,
      );
    }
    log(`installing host packages: ${pkgs.join(" ")}`);
    await aptInstall(pkgs);
  }
  checked = true;
}
