/**
 * `watch` on the journal: sd-daemon `<N>` priorities in front of each line
 * when (and only when) the stream is the one JOURNAL_STREAM names.
 * @module
 */

import assert from "node:assert/strict";
import { isJournalStream, journalLine } from "../../cli/_lib/journal.ts";
import { eventPriority, formatEvent, type WatchEvent } from "../../cli/watch.ts";

function ev(over: Partial<WatchEvent>): WatchEvent {
  return {
    time: "2026-11-22T07:23:01.000Z",
    event: "session-start",
    device: "/dev/vdb",
    dev: "254:16",
    session: "dev_vdb_20261122T072301.000000Z",
    mount_point: "/mnt",
    fs_type: "ext4",
    state: "open",
    error: null,
    chunks_saved: 0,
    bytes_saved: 0,
    pending_bytes: 0,
    ...over,
  };
}

Deno.test("journal: JOURNAL_STREAM must name this very stream", () => {
  const id = () => ({ dev: 9, ino: 4242 });
  assert.equal(isJournalStream(1, "9:4242", id), true);
  assert.equal(isJournalStream(1, "9:4243", id), false, "inherited, but not our stream");
  assert.equal(isJournalStream(1, undefined, id), false, "a terminal or a pipe");
  assert.equal(isJournalStream(1, "junk", id), false);
  assert.equal(isJournalStream(1, "9:4242", () => null), false, "cannot tell: no prefix");
  assert.equal(journalLine("x", 3, true), "<3>x");
  assert.equal(journalLine("x", 3, false), "x");
});

Deno.test("journal: a child whose stdout is the named stream sees it, stderr not", async () => {
  const probe = new URL("../../cli/_lib/journal.ts", import.meta.url).pathname;
  const code = `import { isJournalStream } from "${probe}";
console.log(isJournalStream(1), isJournalStream(2));`;
  const sh = `JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1) exec "${Deno.execPath()}" ` +
    `eval --quiet '${code}'`;
  try {
    const out = await new Deno.Command("bash", {
      args: ["-c", sh],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "true false");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e; // no bash or stat
  }
});

Deno.test("watch: priorities by event, and no prefix off the journal", () => {
  assert.equal(eventPriority(ev({ event: "session-failed", error: "ENOSPC" })), 3);
  assert.equal(eventPriority(ev({ event: "session-end", state: "failed" })), 3);
  assert.equal(eventPriority(ev({ event: "session-end", state: "interrupted" })), 4);
  assert.equal(eventPriority(ev({ event: "session-end", state: "ended" })), 4);
  assert.equal(eventPriority(ev({ event: "session-end", state: "closed" })), 6);
  assert.equal(eventPriority(ev({ event: "session-start" })), 6);
  assert.equal(eventPriority(ev({ event: "module-unloaded" })), 4);
  assert.equal(eventPriority(ev({ event: "activated" })), 5);
  assert.equal(eventPriority(ev({ event: "counters" })), 6);

  const start = ev({});
  const human = formatEvent(start, false, false);
  assert.match(human, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}session start /);
  assert.equal(formatEvent(start, false, true), `<6>${human}`);
  assert.equal(formatEvent(start, true, false), JSON.stringify(start));
  const failed = ev({ event: "session-failed", error: "No space left on device (ENOSPC)" });
  assert.match(formatEvent(failed, false, true), /^<3>.* session FAILED {2}\/dev\/vdb /);
  assert.equal(formatEvent(failed, true, true), `<3>${JSON.stringify(failed)}`);
});
