/**
 * The persistent configuration, `/etc/bdsnap/bdsnap.json` (the directory is
 * `$BDSNAP_CONFIG_DIR` when set): what `bdsnap start` sets up at every boot.
 * `bdsnap activate --persistent` and `deactivate --persistent` maintain the
 * device list; the rest is the admin's to edit. docs/FORMAT.md,
 * "Configuration file", is the prose.
 *
 * ```json
 * {
 *   "format": 1,
 *   "store": "/snapshot",
 *   "module_params": ["inflight_limit_mb=128"],
 *   "retention": { "keep": 7, "older_than": "30d", "max_size": "20G" },
 *   "devices": [{ "identity": "serial:WD-WCC4N1234567", "path": "/dev/sdb", "kind": "block" }]
 * }
 * ```
 *
 * Every key but `format` may be left out. The file is written whole, to a
 * temporary file renamed over it, mode 0600.
 *
 * @module
 */

import { sameIdentity } from "./identity.ts";

/** The file's format number. */
export const CONFIG_FORMAT = 1;
/** The file's name inside the configuration directory. */
export const CONFIG_FILE_NAME = "bdsnap.json";

/** A device `bdsnap start` activates. */
export interface ConfiguredDevice {
  /** Its stable identity (lib/identity.ts), or "" when it has none: then `path` decides. */
  identity: string;
  /** The path it was activated by, last. */
  path: string;
  /** Block device or image file. */
  kind: "block" | "file";
}

/** The retention policy `bdsnap prune` applies when given no policy options. */
export interface RetentionPolicy {
  /** Keep the newest N restore points of each device (`--keep`). */
  keep?: number;
  /** Remove sessions that ended longer ago (`--older-than`, e.g. "30d"). */
  older_than?: string;
  /** Remove the oldest while a device's sessions take more (`--max-size`, e.g. "20G"). */
  max_size?: string;
}

/** The configuration. */
export interface Config {
  format: number;
  /** The store root the module is loaded with (default /snapshot). */
  store?: string;
  /** Module parameters, NAME=VALUE, as `bdsnap load` takes them. */
  module_params?: string[];
  retention?: RetentionPolicy;
  devices: ConfiguredDevice[];
}

/** A configuration file that cannot be used: the message names the file and the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The configuration file's path in `dir`. */
export function configPath(dir: string): string {
  return `${dir}/${CONFIG_FILE_NAME}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Check a parsed configuration; `where` names the file in messages. */
export function parseConfig(text: string, where: string): Config {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${where}: not valid JSON (${e instanceof Error ? e.message : e})`);
  }
  const bad = (key: string, want: string) => new ConfigError(`${where}: "${key}" must be ${want}`);
  if (!isObject(raw)) throw new ConfigError(`${where}: not a JSON object`);
  if (raw.format !== CONFIG_FORMAT) throw bad("format", String(CONFIG_FORMAT));
  const known = ["format", "store", "module_params", "retention", "devices"];
  const unknown = Object.keys(raw).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: unknown key(s) ${unknown.map((k) => `"${k}"`).join(", ")}`);
  }
  if (raw.store !== undefined && (typeof raw.store !== "string" || !raw.store.startsWith("/"))) {
    throw bad("store", "an absolute path");
  }
  const params = raw.module_params;
  if (
    params !== undefined && !(Array.isArray(params) && params.every((p) => typeof p === "string"))
  ) {
    throw bad("module_params", 'a list of "NAME=VALUE" strings');
  }
  const r = raw.retention;
  if (r !== undefined) {
    if (!isObject(r)) throw bad("retention", "an object");
    const extra = Object.keys(r).filter((k) => !["keep", "older_than", "max_size"].includes(k));
    if (extra.length > 0) throw bad("retention", "an object of keep, older_than and max_size");
    if (r.keep !== undefined && !(Number.isSafeInteger(r.keep) && (r.keep as number) >= 1)) {
      throw bad("retention.keep", "a positive integer");
    }
    for (const k of ["older_than", "max_size"] as const) {
      if (r[k] !== undefined && typeof r[k] !== "string") throw bad(`retention.${k}`, "a string");
    }
  }
  const devices = raw.devices ?? [];
  if (!Array.isArray(devices)) throw bad("devices", "a list");
  devices.forEach((d, i) => {
    const at = `devices[${i}]`;
    if (!isObject(d)) throw bad(at, "an object");
    if (typeof d.identity !== "string") throw bad(`${at}.identity`, 'a string ("" for none)');
    if (typeof d.path !== "string" || !d.path.startsWith("/")) {
      throw bad(`${at}.path`, "an absolute path");
    }
    if (d.kind !== "block" && d.kind !== "file") throw bad(`${at}.kind`, '"block" or "file"');
  });
  return { ...(raw as unknown as Config), devices: devices as ConfiguredDevice[] };
}

/** Read the configuration in `dir`; an empty one when there is no file. */
export async function readConfig(dir: string): Promise<Config> {
  const path = configPath(dir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { format: CONFIG_FORMAT, devices: [] };
    throw e;
  }
  return parseConfig(text, path);
}

/** Write the configuration to `dir` (created 0700 if missing), atomically, mode 0600. */
export async function writeConfig(dir: string, config: Config): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = configPath(dir);
  const tmp = `${path}.new`;
  const text = JSON.stringify(config, null, 2) + "\n";
  await Deno.writeTextFile(tmp, text, { mode: 0o600 });
  const f = await Deno.open(tmp, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, path);
}

/** Is `d` the configured device `c`: the same identity, or without one, the same path? */
export function sameDevice(c: ConfiguredDevice, d: ConfiguredDevice): boolean {
  if (c.identity !== "" && d.identity !== "") return sameIdentity(c.identity, d.identity);
  return c.path === d.path;
}

/** The configuration with `d` recorded (replacing the entry of the same device). */
export function withDevice(config: Config, d: ConfiguredDevice): Config {
  return { ...config, devices: [...config.devices.filter((c) => !sameDevice(c, d)), d] };
}

/** The configuration without the device `d`; `removed` says whether it was there. */
export function withoutDevice(
  config: Config,
  d: ConfiguredDevice,
): { config: Config; removed: boolean } {
  const devices = config.devices.filter((c) => !sameDevice(c, d));
  return { config: { ...config, devices }, removed: devices.length !== config.devices.length };
}
