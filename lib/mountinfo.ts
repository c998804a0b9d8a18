/**
 * `/proc/self/mountinfo`: a parser, a differ and a watcher.
 *
 * The watcher polls the mountinfo file for `POLLPRI` through FFI: the kernel
 * raises it whenever the mount namespace's table changes. inotify does not
 * see such changes on procfs, and re-reading on a timer alone would miss
 * short mounts and cost more.
 *
 * @example
 * ```ts
 * import { watchMounts } from "./mountinfo.ts";
 * const ac = new AbortController();
 * for await (const ev of watchMounts({ signal: ac.signal })) {
 *   for (const m of ev.added) console.log("mounted", m.source, "on", m.mountPoint);
 * }
 * ```
 *
 * @module
 */

import {
  alloc,
  close,
  O_RDONLY,
  open,
  pipe,
  pollAsync,
  POLLERR,
  POLLIN,
  POLLPRI,
  pread,
  write,
} from "../ffi/libc.ts";

/** One line of mountinfo (see proc(5)). */
export interface MountEntry {
  /** Unique id of the mount (may be reused after unmount). */
  mountId: number;
  parentId: number;
  major: number;
  minor: number;
  /** "major:minor" of the device. */
  dev: string;
  /** Root of the mount within the filesystem. */
  root: string;
  /** Mount point, relative to the process's root. */
  mountPoint: string;
  /** Per-mount options, e.g. ["rw", "relatime"]. */
  options: string[];
  /** Optional fields, e.g. ["shared:1"]. */
  optional: string[];
  fsType: string;
  /** Filesystem-specific source, e.g. "/dev/vdb", or "none". */
  source: string;
  /** Per-superblock options. */
  superOptions: string[];
}

/** Undo the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash). */
export function unescapeMountField(s: string): string {
  if (!s.includes("\\")) return s;
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length;) {
    const m = s[i] === "\\" ? /^\\([0-7]{3})/.exec(s.slice(i, i + 4)) : null;
    if (m) {
      bytes.push(Number.parseInt(m[1], 8) & 0xff);
      i += 4;
    } else {
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...enc.encode(ch));
      i += ch.length;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Parse one mountinfo line; `null` for a blank or malformed line. */
export function parseMountinfoLine(line: string): MountEntry | null {
  const f = line.trim().split(" ");
  const sep = f.indexOf("-", 6);
  if (f.length < 10 || sep === -1 || f.length < sep + 3) return null;
  const [majS, minS] = f[2].split(":");
  const major = Number(majS), minor = Number(minS);
  const mountId = Number(f[0]), parentId = Number(f[1]);
  if (![major, minor, mountId, parentId].every(Number.isInteger)) return null;
  return {
    mountId,
    parentId,
    major,
    minor,
    dev: `${major}:${minor}`,
    root: unescapeMountField(f[3]),
    mountPoint: unescapeMountField(f[4]),
    options: f[5].split(","),
    optional: f.slice(6, sep),
    fsType: unescapeMountField(f[sep + 1]),
    source: unescapeMountField(f[sep + 2]),
    superOptions: (f[sep + 3] ?? "").split(",").filter((o) => o !== ""),
  };
}

/** Parse the whole text of a mountinfo file, skipping malformed lines. */
export function parseMountinfo(text: string): MountEntry[] {
  return text.split("\n").map(parseMountinfoLine).filter((m): m is MountEntry => m !== null);
}

/** The identity of a mount for diffing: id, device and mount point. */
export function mountKey(m: MountEntry): string {
  return `${m.mountId} ${m.dev} ${m.mountPoint}`;
}

/** What changed between two mount tables. */
export interface MountDiff {
  added: MountEntry[];
  removed: MountEntry[];
}

/** Compare two mount tables. */
export function diffMounts(before: MountEntry[], after: MountEntry[]): MountDiff {
  const b = new Set(before.map(mountKey));
  const a = new Set(after.map(mountKey));
  return {
    added: after.filter((m) => !b.has(mountKey(m))),
    removed: before.filter((m) => !a.has(mountKey(m))),
  };
}

/**
 * An open mountinfo file whose changes can be awaited. Use with `using`, or
 * call {@linkcode MountTable.close}.
 */
export class MountTable implements Disposable {
  #fd: number;
  #wake: [number, number];
  #closed = false;
  #polling: Promise<unknown> | null = null;

  /** Open `path` (default `/proc/self/mountinfo`). */
  constructor(path = "/proc/self/mountinfo") {
    this.#fd = open(path, O_RDONLY);
    this.#wake = pipe();
  }

  /** Read and parse the whole table now. */
  read(): MountEntry[] {
    const chunks: Uint8Array[] = [];
    const buf = alloc(65536);
    let off = 0;
    for (;;) {
      const n = pread(this.#fd, buf, off);
      if (n <= 0) break;
      chunks.push(buf.slice(0, n));
      off += n;
    }
    const all = new Uint8Array(off);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return parseMountinfo(new TextDecoder().decode(all));
  }

  /**
   * Wait until the table changes, `timeoutMs` passes, or {@linkcode
   * MountTable.wake} is called. Resolves to what happened.
   */
  async wait(timeoutMs: number): Promise<"changed" | "timeout" | "woken"> {
    if (this.#closed) return "woken";
    const p = pollAsync([
      { fd: this.#fd, events: POLLPRI },
      { fd: this.#wake[0], events: POLLIN },
    ], Math.max(0, Math.round(timeoutMs)));
    this.#polling = p;
    const revents = await p;
    this.#polling = null;
    if (revents === null) return "timeout"; // EINTR and the like: look again
    if (revents[1] & POLLIN) return "woken";
    if (revents[0] & (POLLPRI | POLLERR)) return "changed";
    return "timeout";
  }

  /** Make a pending or the next {@linkcode MountTable.wait} return "woken". */
  wake(): void {
    try {
      write(this.#wake[1], new Uint8Array(new ArrayBuffer(1)));
    } catch {
      // the pipe is full: a wake-up is already pending
    }
  }

  /** Wake any waiter, then release the file descriptors once it has returned. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.wake();
    await this.#polling;
    close(this.#fd);
    close(this.#wake[0]);
    close(this.#wake[1]);
  }

  /** Synchronous part of close, for `using`; a pending wait must be over. */
  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    close(this.#fd);
    close(this.#wake[0]);
    close(this.#wake[1]);
  }
}

/** One report of {@linkcode watchMounts}. */
export interface MountEvent extends MountDiff {
  /** The whole table now. */
  mounts: MountEntry[];
  /** Why this report: the table changed, or the interval passed. */
  reason: "initial" | "changed" | "tick";
}

/** Options of {@linkcode watchMounts}. */
export interface WatchOptions {
  /** Stop watching when aborted. */
  signal?: AbortSignal;
  /** Also report every this many milliseconds with no change (default: never). */
  intervalMs?: number;
  /** The file to watch (default `/proc/self/mountinfo`). */
  path?: string;
}

/**
 * Follow the mount table: first an "initial" report with the table, then a
 * report for every change (and every `intervalMs`, if given), until `signal`
 * is aborted.
 */
export async function* watchMounts(options: WatchOptions = {}): AsyncGenerator<MountEvent> {
  const { signal, intervalMs, path } = options;
  const table = new MountTable(path);
  const onAbort = () => table.wake();
  signal?.addEventListener("abort", onAbort);
  try {
    let mounts = table.read();
    yield { reason: "initial", mounts, added: [], removed: [] };
    let next = intervalMs ? Date.now() + intervalMs : Infinity;
    while (!signal?.aborted) {
      const timeout = next === Infinity ? 60_000 : Math.max(0, next - Date.now());
      const what = await table.wait(timeout);
      if (signal?.aborted || what === "woken") break;
      if (what === "changed") {
        const now = table.read();
        const d = diffMounts(mounts, now);
        mounts = now;
        if (d.added.length || d.removed.length) yield { reason: "changed", mounts, ...d };
      }
      if (Date.now() >= next) {
        next = Date.now() + intervalMs!;
        yield { reason: "tick", mounts, added: [], removed: [] };
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await table.close();
  }
}

/**
 * The device /etc/fstab mounts at the mount point holding `path`, when that
 * mount point is not mounted yet; else null. At boot, before local
 * filesystems are mounted, a store root under such a mount point would be a
 * directory of the filesystem below it.
 */
export function unmountedStoreMount(
  path: string,
  fstab = "/etc/fstab",
  mountinfo = "/proc/self/mountinfo",
): string | null {
  let table: string;
  let mounted: Set<string>;
  try {
    table = Deno.readTextFileSync(fstab);
    mounted = new Set(parseMountinfo(Deno.readTextFileSync(mountinfo)).map((m) => m.mountPoint));
  } catch {
    return null;
  }
  let best: { dir: string; spec: string } | null = null;
  for (const line of table.split("\n")) {
    const [spec, dir, type, options = ""] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (!dir || !dir.startsWith("/") || type === "swap" || options.split(",").includes("noauto")) {
      continue;
    }
    const d = unescapeMountField(dir).replace(/\/+$/, "") || "/";
    const under = d === "/" || path === d || path.startsWith(`${d}/`);
    if (under && (best === null || d.length > best.dir.length)) best = { dir: d, spec };
  }
  return best !== null && !mounted.has(best.dir) ? `${best.spec} (${best.dir})` : null;
}
