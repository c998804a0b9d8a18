/**
 * Human units: byte sizes in binary units, local times, and durations.
 * @module
 */

const BYTE_UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/** A byte count for people: "512 B", "4.0 KiB", "1.5 MiB", "2.3 GiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "-";
  if (Math.abs(n) < 1024) return `${n} B`;
  let v = n / 1024;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${BYTE_UNITS[i]}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

/** A time in the local time zone, "YYYY-MM-DD HH:MM:SS"; "-" for 0 or invalid. */
export function formatLocalTime(msSinceEpoch: number): string {
  if (!msSinceEpoch || !Number.isFinite(msSinceEpoch)) return "-";
  const d = new Date(msSinceEpoch);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** A nanosecond Unix time (as meta.json stores it) in local time. */
export function formatNs(ns: number): string {
  return formatLocalTime(ns / 1e6);
}

/** A nanosecond Unix time as an ISO-8601 UTC string, or null for 0. */
export function isoFromNs(ns: number): string | null {
  if (!ns || !Number.isFinite(ns)) return null;
  return new Date(Math.floor(ns / 1e6)).toISOString();
}

const DURATION_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parse a duration such as "90s", "15m", "12h", "30d", "2w" or "1d12h" into
 * milliseconds. Throws `SyntaxError` for anything else.
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (!/^(\d+[smhdw])+$/.test(s)) {
    throw new SyntaxError(
      `bad duration "${text}": use a number and a unit s, m, h, d or w, e.g. 30d or 1d12h`,
    );
  }
  let ms = 0;
  for (const m of s.matchAll(/(\d+)([smhdw])/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
  return ms;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
};

/**
 * Parse a size such as "4096", "512K", "10G", "1.5TiB" or "20GB" into bytes
 * (K, M, G, T are powers of 1024). Throws `SyntaxError` for anything else.
 */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  if (m === null) {
    throw new SyntaxError(`bad size "${text}": use a number and K, M, G or T, e.g. 10G`);
  }
  return Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? "").toLowerCase()]);
}
