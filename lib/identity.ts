/**
 * A device's stable identity: what names the same disk, partition or image
 * file across reboots and renumbering, so that a chain of sessions stays with
 * its own device (docs/FORMAT.md, "Device identity"). `bdsnap activate`
 * reads it and hands it to the module, which writes it into every session's
 * meta.json; the restorer and prune group sessions by it.
 *
 * | device                 | identity                                         |
 * | ---------------------- | ------------------------------------------------ |
 * | disk with a WWN        | `wwn:<WWN>` (udev's ID_WWN_WITH_EXTENSION)       |
 * | disk with a serial     | `serial:<serial>` (udev's ID_SERIAL, or sysfs)   |
 * | GPT or MBR partition   | `partuuid:<PARTUUID>`                            |
 * | device-mapper, md RAID | `dm-uuid:<uuid>`, `md-uuid:<uuid>`               |
 * | loop device            | the identity of its backing file, `@<offset>`    |
 * | image file             | `file:<st_dev>:<st_ino>:<path>`                  |
 *
 * The sources are udev's database (what /dev/disk/by-id shows) when udev
 * runs, else sysfs and, for a partition's UUID, the partition table itself.
 * A device with none of these (a RAM disk) has no identity: its chain is
 * keyed by path, as before identities existed.
 *
 * @module
 */

import { IDENTITY_LEN } from "../ffi/uapi.ts";

/** Decode a Linux `dev_t` as `major:minor`. */
export function devString(rdev: number): string {
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** Where identities are read from; tests point them at fake trees. */
export interface IdentitySources {
  /** sysfs (default /sys). */
  sys: string;
  /** udev's database (default /run/udev/data). */
  udev: string;
  /** Device nodes (default /dev), read for partition tables. */
  dev: string;
}

const SYSTEM: IdentitySources = { sys: "/sys", udev: "/run/udev/data", dev: "/dev" };

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return null;
  }
}

/** Printable ASCII only, as the module takes it; at most IDENTITY_LEN - 1 bytes. */
function clean(id: string): string {
  return id.replace(/[^\x20-\x7e]/g, "_").slice(0, IDENTITY_LEN - 1);
}

/** udev's properties of a block device (E: lines of /run/udev/data/bM:m). */
function udevProperties(src: IdentitySources, devno: string): Map<string, string> {
  const out = new Map<string, string>();
  const text = readText(`${src.udev}/b${devno}`);
  for (const line of text?.split("\n") ?? []) {
    const m = /^E:([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

/** A GUID as its 16 on-disk bytes give it (the first three fields little-endian). */
function guid(b: Uint8Array): string {
  const hex = (xs: number[]) => xs.map((x) => x.toString(16).padStart(2, "0")).join("");
  return [
    hex([b[3], b[2], b[1], b[0]]),
    hex([b[5], b[4]]),
    hex([b[7], b[6]]),
    hex([b[8], b[9]]),
    hex([...b.subarray(10, 16)]),
  ].join("-");
}

function readAt(path: string, offset: number, length: number): Uint8Array | null {
  try {
    const f = Deno.openSync(path, { read: true });
    try {
      const buf = new Uint8Array(length);
      f.seekSync(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = f.readSync(buf.subarray(got));
        if (n === null) return null;
        got += n;
      }
      return buf;
    } finally {
      f.close();
    }
  } catch {
    return null;
  }
}

/**
 * The PARTUUID of partition `partn` of the disk at `diskNode`, read from its
 * GPT (the entry's unique GUID) or MBR (`<disk signature>-<nn>`), as blkid
 * reports it; null when there is neither.
 */
export function partitionUuid(diskNode: string, partn: number, sectorSize: number): string | null {
  const header = readAt(diskNode, sectorSize, 92);
  if (header && new TextDecoder().decode(header.subarray(0, 8)) === "EFI PART") {
    const v = new DataView(header.buffer);
    const entriesLba = Number(v.getBigUint64(72, true));
    const count = v.getUint32(80, true);
    const size = v.getUint32(84, true);
    if (partn < 1 || partn > count || size < 32) return null;
    const entry = readAt(diskNode, entriesLba * sectorSize + (partn - 1) * size, 32);
    return entry ? guid(entry.subarray(16, 32)) : null;
  }
  const mbr = readAt(diskNode, 0, 512);
  if (!mbr || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return null;
  const sig = new DataView(mbr.buffer).getUint32(440, true);
  if (sig === 0) return null;
  return `${sig.toString(16).padStart(8, "0")}-${partn.toString(16).padStart(2, "0")}`;
}

/** The identity of a whole block device from sysfs and udev, or null. */
function diskIdentity(src: IdentitySources, sysDir: string, devno: string): string | null {
  const udev = udevProperties(src, devno);
  const wwn = udev.get("ID_WWN_WITH_EXTENSION") ?? udev.get("ID_WWN");
  if (wwn) return `wwn:${wwn}`;
  if (udev.get("ID_SERIAL")) return `serial:${udev.get("ID_SERIAL")}`;
  const sysWwid = readText(`${sysDir}/wwid`) ?? readText(`${sysDir}/device/wwid`);
  if (sysWwid) return `wwn:${sysWwid}`;
  const serial = readText(`${sysDir}/serial`) ?? readText(`${sysDir}/device/serial`);
  if (serial) return `serial:${serial}`;
  const dm = readText(`${sysDir}/dm/uuid`);
  if (dm) return `dm-uuid:${dm}`;
  const md = readText(`${sysDir}/md/uuid`);
  if (md) return `md-uuid:${md}`;
  const backing = readText(`${sysDir}/loop/backing_file`);
  if (backing) {
    const file = fileIdentity(backing.replace(/ \(deleted\)$/, ""));
    const offset = Number(readText(`${sysDir}/loop/offset`) ?? 0);
    if (file) return offset > 0 ? `${file}@${offset}` : file;
  }
  return null;
}

function fileIdentity(path: string): string | null {
  try {
    const st = Deno.statSync(path);
    return st.isFile ? `file:${st.dev}:${st.ino}:${path}` : null;
  } catch {
    return null;
  }
}

/**
 * The stable identity of a block device or image file `path`, or null when
 * it has none (or cannot be looked at).
 */
export function deviceIdentity(path: string, src: IdentitySources = SYSTEM): string | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch {
    return null;
  }
  if (st.isFile) {
    const id = fileIdentity(path);
    return id === null ? null : clean(id);
  }
  if (!st.isBlockDevice || st.rdev === null) return null;
  return blockIdentity(devString(st.rdev), src);
}

/** The stable identity of the block device `devno` (`major:minor`), or null. */
export function blockIdentity(devno: string, src: IdentitySources = SYSTEM): string | null {
  let sysDir: string;
  try {
    sysDir = Deno.realPathSync(`${src.sys}/dev/block/${devno}`);
  } catch {
    return null;
  }
  const partn = Number(readText(`${sysDir}/partition`) ?? 0);
  if (partn > 0) {
    const udevUuid = udevProperties(src, devno).get("ID_PART_ENTRY_UUID");
    const disk = sysDir.replace(/\/[^/]+$/, "");
    const diskName = disk.slice(disk.lastIndexOf("/") + 1);
    const sector = Number(readText(`${disk}/queue/logical_block_size`) ?? 512);
    const uuid = udevUuid ?? partitionUuid(`${src.dev}/${diskName}`, partn, sector);
    if (uuid) return clean(`partuuid:${uuid.toLowerCase()}`);
    const whole = diskIdentity(src, disk, readText(`${disk}/dev`) ?? "");
    return whole === null ? null : clean(`${whole}-part${partn}`);
  }
  const id = diskIdentity(src, sysDir, devno);
  return id === null ? null : clean(id);
}

/**
 * Do two identities name the same device? Equal strings do. Image files
 * also match when the inode is the same and either the path or the device
 * number is: device numbers change at reboot, paths when a file is renamed.
 */
export function sameIdentity(a: string, b: string): boolean {
  if (a === b) return true;
  const fa = /^file:(\d+):(\d+):(.*)$/s.exec(a);
  const fb = /^file:(\d+):(\d+):(.*)$/s.exec(b);
  if (!fa || !fb || fa[2] !== fb[2]) return false;
  return fa[1] === fb[1] || fa[3] === fb[3];
}

/**
 * Where the device with `identity` is now: its /dev node (or, for an image
 * file, its path), or null when no device present has it.
 */
export function findDevice(identity: string, src: IdentitySources = SYSTEM): string | null {
  const file = /^file:(\d+):(\d+):(.*?)(@\d+)?$/s.exec(identity);
  if (file) {
    const now = fileIdentity(file[3]);
    return now !== null && sameIdentity(now, identity.replace(/@\d+$/, "")) ? file[3] : null;
  }
  let names: string[];
  try {
    names = [...Deno.readDirSync(`${src.sys}/class/block`)].map((e) => e.name).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    const devno = readText(`${src.sys}/class/block/${name}/dev`);
    if (devno && blockIdentity(devno, src) === identity) return `${src.dev}/${name}`;
  }
  return null;
}
