/**
 * The guest's initramfs: static busybox, the few drivers needed to reach the
 * host root (virtio, 9p, overlay) and scripts/vm/guest/init. Built per kernel
 * and cached; rebuilt when the init script changes.
 * @module
 */
import type { Kernel } from "./kernels.ts";
import { run, runChecked } from "./_process.ts";
import { REPO } from "./paths.ts";

/** Modules the root filesystem needs, with their dependencies resolved by modprobe. */
const ROOT_MODULES = ["virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "overlay"];
/**
 * Their config symbols: Debian's 7.x packages ship no modules.builtin, so a
 * module modprobe cannot find is looked up in the kernel's .config.
 */
const CONFIG: Record<string, string> = {
  virtio_pci: "VIRTIO_PCI",
  virtio_blk: "VIRTIO_BLK",
  "9pnet_virtio": "NET_9P_VIRTIO",
  "9p": "9P_FS",
  overlay: "OVERLAY_FS",
};

async function builtIn(k: Kernel, module: string): Promise<boolean> {
  const config = await Deno.readTextFile(`${k.headers}/.config`).catch(() => "");
  return config.split("\n").includes(`CONFIG_${CONFIG[module]}=y`);
}

/** Path of the kernel's initramfs, building it when missing or stale. */
export async function ensureInitramfs(k: Kernel): Promise<string> {
  const init = await Deno.readTextFile(`${REPO}/scripts/vm/guest/init`);
  const stamp = await sha256Hex(init + ROOT_MODULES.join(","));
  const image = `${k.root}/initramfs-${stamp.slice(0, 12)}.cpio.gz`;
  try {
    await Deno.stat(image);
    return image;
  } catch {
    // build it
  }
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-initramfs-" });
  try {
    await Deno.mkdir(`${dir}/bin`, { recursive: true });
    await Deno.mkdir(`${dir}/modules`);
    await Deno.copyFile("/bin/busybox", `${dir}/bin/busybox`);
    await Deno.writeTextFile(`${dir}/init`, init, { mode: 0o755 });
    await Deno.chmod(`${dir}/init`, 0o755);

    const order: string[] = [];
    for (const m of ROOT_MODULES) {
      const r = await run("modprobe", ["-d", k.root, "-S", k.release, "--show-depends", m]);
      if (r.code !== 0 && await builtIn(k, m)) continue;
      if (r.code !== 0) {
        throw new Error(`modprobe --show-depends ${m} for ${k.release} failed: ${r.stderr.trim()}`);
      }
      for (const line of r.stdout.split("\n")) {
        const path = /^insmod (\S+)/.exec(line)?.[1];
        if (!path) continue; // "builtin X"
        const name = path.split("/").pop()!.replace(/\.(xz|zst|gz)$/, "");
        if (order.includes(name)) continue;
        order.push(name);
        await unpackModule(path, `${dir}/modules/${name}`);
      }
    }
    await Deno.writeTextFile(`${dir}/modules.order`, order.join("\n") + "\n");
    const tmp = `${image}.tmp`;
    await runChecked("sh", [
      "-c",
      `cd '${dir}' && find . | cpio -o -H newc --quiet | gzip -1 > '${tmp}'`,
    ]);
    await Deno.rename(tmp, image);
    return image;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** busybox insmod takes plain .ko files: decompress on the host. */
async function unpackModule(src: string, dest: string): Promise<void> {
  if (src.endsWith(".xz")) {
    await runChecked("sh", ["-c", `xz -dc '${src}' > '${dest}'`]);
  } else if (src.endsWith(".zst")) {
    await runChecked("sh", ["-c", `zstd -qdc '${src}' > '${dest}'`]);
  } else {
    await Deno.copyFile(src, dest);
  }
}

/** Hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
