/**
 * The audit trail: `restore`, `prune`, `activate` and `deactivate` each send
 * one line to syslog (facility auth, priority notice, tag bdsnap; the journal
 * takes it when journald owns /dev/log) saying who ran what on which device
 * and how it ended. Auditing never fails a command, never prints, and costs
 * nothing without a syslog socket; `BDSNAP_AUDIT=0` turns it off.
 * @module
 */

import { toCliError } from "./explain.ts";
import { EXIT_FAILED } from "./errors.ts";

/** What a command did, filled in as the command learns it. */
export interface AuditRecord {
  /** The command: restore, prune, activate, deactivate. */
  command: string;
  /** The device path, as recorded in the store or handed to the kernel. */
  device?: string;
  /** The session restored to. */
  session?: string;
  /** Where a restore wrote, when not the device itself. */
  target?: string;
  /** The session ids prune removed. */
  removed?: string[];
}

/** Who ran the command. */
export interface Actor {
  uid: number | null;
  /** $SUDO_USER, when run through sudo. */
  sudoUser: string | null;
  /** The login uid of the session (/proc/self/loginuid), when set. */
  loginUid: number | null;
}

/** Where audit lines go: syslog by default, tests set their own. */
export type AuditSink = (line: string) => void | Promise<void>;

const UNSET_LOGINUID = 4294967295; // (uid_t)-1: no login session
const MAX_IDS = 20; // a prune of hundreds of sessions is still one line
const SYSLOG_SOCKET = "/dev/log";
const LOGGER_TIMEOUT_MS = 500;

let sinkOverride: AuditSink | null = null;

/** Replace the sink (tests); null restores syslog. */
export function setAuditSink(sink: AuditSink | null): void {
  sinkOverride = sink;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Who runs this process. */
export function currentActor(): Actor {
  let uid: number | null = null;
  let loginUid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    // not permitted to ask: left out of the line
  }
  try {
    const n = Number(Deno.readTextFileSync("/proc/self/loginuid").trim());
    if (Number.isInteger(n) && n !== UNSET_LOGINUID) loginUid = n;
  } catch {
    // no audit support in the kernel
  }
  return { uid, sudoUser: env("SUDO_USER") || null, loginUid };
}

function field(key: string, value: string | number): string {
  const v = String(value);
  return /^[\w./:,+@-]+$/.test(v) ? `${key}=${v}` : `${key}=${JSON.stringify(v)}`;
}

/** The audit line: `COMMAND key=value… result=ok` (or `result=error exit=N`). */
export function auditLine(rec: AuditRecord, actor: Actor, exitCode: number): string {
  const parts = [rec.command];
  if (rec.device !== undefined) parts.push(field("device", rec.device));
  if (rec.session !== undefined) parts.push(field("session", rec.session));
  if (rec.target !== undefined) parts.push(field("target", rec.target));
  if (rec.removed !== undefined) {
    const ids = rec.removed.slice(0, MAX_IDS).join(",");
    const more = rec.removed.length > MAX_IDS ? `,+${rec.removed.length - MAX_IDS}` : "";
    parts.push(field("removed", rec.removed.length));
    if (rec.removed.length > 0) parts.push(field("ids", ids + more));
  }
  if (actor.uid !== null) parts.push(field("uid", actor.uid));
  if (actor.sudoUser !== null) parts.push(field("sudo_user", actor.sudoUser));
  if (actor.loginUid !== null) parts.push(field("loginuid", actor.loginUid));
  parts.push(exitCode === 0 ? "result=ok" : `result=error exit=${exitCode}`);
  return parts.join(" ");
}

/**
 * Send a line to syslog through util-linux logger(1), only when a syslog
 * socket is there (none in the test VMs: then nothing is started at all).
 */
export async function syslogSink(line: string): Promise<void> {
  try {
    Deno.statSync(SYSLOG_SOCKET);
  } catch {
    return;
  }
  const child = new Deno.Command("logger", {
    args: ["-t", "bdsnap", "-p", "auth.notice", `--id=${Deno.pid}`, "--", line],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, LOGGER_TIMEOUT_MS);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/** Write one audit line; any failure of the sink is swallowed. */
export async function writeAudit(rec: AuditRecord, exitCode: number): Promise<void> {
  if (env("BDSNAP_AUDIT") === "0") return;
  try {
    await (sinkOverride ?? syslogSink)(auditLine(rec, currentActor(), exitCode));
  } catch {
    // the audit trail must never fail the command it records
  }
}

/**
 * Run a command's work and audit it: `fn` fills in `rec` as it goes; the
 * line says ok, or the exit code of the error, which is then rethrown.
 */
export async function audited<T>(
  rec: AuditRecord,
  fn: (rec: AuditRecord) => Promise<T> | T,
): Promise<T> {
  let result: T;
  try {
    result = await fn(rec);
  } catch (e) {
    await writeAudit(rec, toCliError(e)?.exitCode ?? EXIT_FAILED);
    throw e;
  }
  await writeAudit(rec, 0);
  return result;
}
