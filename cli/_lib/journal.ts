/**
 * Lines for the systemd journal: when a standard stream is connected to it
 * (systemd sets `JOURNAL_STREAM=DEV:INODE` to that stream's device and inode),
 * each line may start with an sd-daemon `<N>` priority, which journald takes
 * as the line's level and strips. Anywhere else the lines stay as they are.
 * @module
 */

/** The syslog priorities we use (sd-daemon(3)). */
export const PRIORITY = {
  err: 3,
  warning: 4,
  notice: 5,
  info: 6,
} as const;

/** A syslog priority, 0 (emerg) to 7 (debug). */
export type Priority = number;

/** What a stream is: its device and inode numbers, or null when unknown. */
export type StreamId = { dev: number; ino: number } | null;

/** The device and inode of file descriptor `fd` of this process (null: cannot tell). */
export function streamId(fd: number): StreamId {
  try {
    const st = Deno.statSync(`/proc/self/fd/${fd}`);
    return { dev: st.dev, ino: st.ino ?? -1 };
  } catch {
    return null;
  }
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: not the journal, as far as we can tell
  }
}

/**
 * Is file descriptor `fd` the journal stream systemd gave us? Only when
 * JOURNAL_STREAM names it: a child whose output a test or a pipe collects
 * inherits the variable but not the stream, and gets no prefixes.
 */
export function isJournalStream(
  fd: number,
  env: string | undefined = readEnv("JOURNAL_STREAM"),
  id: (fd: number) => StreamId = streamId,
): boolean {
  const m = env?.match(/^(\d+):(\d+)$/);
  if (!m) return false;
  const st = id(fd);
  return st !== null && st.dev === Number(m[1]) && st.ino === Number(m[2]);
}

/** `line` with its priority prefix when it goes to the journal, else as it is. */
export function journalLine(line: string, priority: Priority, journal: boolean): string {
  return journal ? `<${priority}>${line}` : line;
}
