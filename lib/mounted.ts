/**
 * The mounts a device or image file carries now: those of the block device,
 * of its partitions, and of the loop devices (and their partitions) backed by
 * the image. The module opens sessions at mount time, so `bdsnap activate`
 * has the module start the session of such a mount itself, frozen for the
 * start (cli/_lib/live_session.ts; docs/CLI.md, "activate").
 * @module
 */

import { devString } from "./identity.ts";
import { type MountEntry, parseMountinfo } from "./mountinfo.ts";

/** "major:minor" of a block device node, or null. */
function devOf(path: string): string | null {
  try {
    const st = Deno.statSync(path);
    return st.isBlockDevice && st.rdev !== null ? devString(st.rdev) : null;
  } catch {
    return null;
  }
}

/** The device `devno` and its partitions, as "major:minor" (sysfs). */
function withPartitions(devno: string, sys: string): string[] {
  const out = [devno];
  try {
    const dir = Deno.realPathSync(`${sys}/dev/block/${devno}`);
    for (const e of Deno.readDirSync(dir)) {
      const dev = `${dir}/${e.name}/dev`;
      try {
        if (Deno.statSync(`${dir}/${e.name}/partition`).isFile) {
          out.push(Deno.readTextFileSync(dev).trim());
        }
      } catch {
        // not a partition
      }
    }
  } catch {
    // no sysfs entry: the device alone
  }
  return out;
}

/** "major:minor" of the loop devices whose backing file is `real` (sysfs). */
function loopsBackedBy(real: string, sys: string): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(`${sys}/block`)) {
      if (!e.name.startsWith("loop")) continue;
      try {
        const backing = Deno.readTextFileSync(`${sys}/block/${e.name}/loop/backing_file`).trim();
        if (backing === real) out.push(Deno.readTextFileSync(`${sys}/block/${e.name}/dev`).trim());
      } catch {
        // not attached
      }
    }
  } catch {
    // no sysfs: nothing attached
  }
  return out;
}

/** The mounts on `path` (a block device, or an image file behind loop devices). */
export async function mountsOn(
  path: string,
  sys = "/sys",
  mountinfo = "/proc/self/mountinfo",
): Promise<MountEntry[]> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch {
    return [];
  }
  const devs = new Set<string>();
  const own = devOf(real);
  if (own !== null) {
    for (const d of withPartitions(own, sys)) devs.add(d);
  } else {
    for (const d of loopsBackedBy(real, sys)) {
      for (const p of withPartitions(d, sys)) devs.add(p);
    }
  }
  if (devs.size === 0) return [];
  const text = await Deno.readTextFile(mountinfo).catch(() => "");
  return parseMountinfo(text).filter((m) => devs.has(m.dev));
}
