/**
 * What every command needs to know about its invocation: the global options
 * (--store, --json, --quiet), the configuration directory, and how to report.
 * @module
 */

import type { Command } from "./commander.ts";
import { eprintln, printJson, println } from "./io.ts";
import { readParameter } from "../../ffi/control.ts";
import { DEFAULT_STORE_ROOT } from "../../lib/store.ts";

/** The store root when neither --store nor the loaded module names one. */
export { DEFAULT_STORE_ROOT };
/** Where `setup` keeps the password hash, unless BDSNAP_CONFIG_DIR says otherwise. */
export const DEFAULT_CONFIG_DIR = "/etc/bdsnap";
/** The password hash file's name inside the configuration directory. */
export const HASH_FILE_NAME = "passwd.hash";

/** The global options, as every command sees them. */
export interface GlobalOptions {
  /** --store DIR, if given. */
  store?: string;
  /** --json: machine-readable output on stdout. */
  json: boolean;
  /** -q/--quiet: no informational messages. */
  quiet: boolean;
}

/** The global options in effect for a command (its own options merged with its parents'). */
export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals();
  return { store: o.store, json: Boolean(o.json), quiet: Boolean(o.quiet) };
}

/** The configuration directory: $BDSNAP_CONFIG_DIR or /etc/bdsnap. */
export function configDir(): string {
  return Deno.env.get("BDSNAP_CONFIG_DIR") || DEFAULT_CONFIG_DIR;
}

/** The password hash file: <config dir>/passwd.hash. */
export function hashFile(): string {
  return `${configDir()}/${HASH_FILE_NAME}`;
}

/** Where the store root came from. */
export type StoreRootSource = "option" | "module" | "default";

/** The store root: --store, else the loaded module's store_root parameter, else /snapshot. */
export function storeRoot(opts: GlobalOptions): { root: string; source: StoreRootSource } {
  if (opts.store) return { root: opts.store, source: "option" };
  const fromModule = readParameter("store_root");
  if (fromModule) return { root: fromModule, source: "module" };
  return { root: DEFAULT_STORE_ROOT, source: "default" };
}

/**
 * Report the result of a command: the JSON value with --json, else the
 * human line unless --quiet.
 */
export function report(opts: GlobalOptions, human: string | string[], json: unknown): void {
  if (opts.json) printJson(json);
  else if (!opts.quiet) { for (const l of [human].flat()) println(l); }
}

/** An informational message on stderr, unless --quiet. */
export function note(opts: GlobalOptions, message: string): void {
  if (!opts.quiet) eprintln(`bdsnap: ${message}`);
}

/** A warning on stderr, unless --quiet. */
export function warn(opts: GlobalOptions, message: string): void {
  if (!opts.quiet) eprintln(`bdsnap: warning: ${message}`);
}
