/**
 * `bdsnap show SESSION [--ranges]`: one session in detail; with --ranges,
 * the device byte ranges it saved (the blocks that mount changed), which
 * makes each session a changed-block list for incremental backups.
 * @module
 */

import type { Command } from "./_lib/commander.ts";
import { globals, storeRoot } from "./_lib/context.ts";
import { printJson, println } from "./_lib/io.ts";
import { formatTable } from "./_lib/table.ts";
import { formatBytes, formatNs } from "./_lib/units.ts";
import { changedRanges, type Range, sessionJson } from "./_lib/store_view.ts";
import { readSessionSpec } from "./_lib/session_spec.ts";
import type { Session } from "../lib/store.ts";
import type { Durability } from "../lib/format.ts";

/** The stable JSON shape of `show --json`. */
export function showJson(s: Session, ranges: boolean) {
  return {
    session: sessionJson(s),
    dir: s.dir,
    torn_tail: s.tail ? { offset: s.tail.offset, reason: s.tail.reason } : null,
    ranges: ranges ? changedRanges(s) : null,
  };
}

/** A durability and what it promises after a crash. */
export function durabilityText(d: Durability): string {
  return d === "write-ahead"
    ? "write-ahead (each pre-image saved before its write reached the device)"
    : "flush (pre-images saved at the device's flushes; a crash can lose some)";
}

/** The human report of `show`. */
export function showLines(s: Session, ranges: Range[] | null): string[] {
  const j = sessionJson(s);
  const lines = [
    `session:     ${s.id}`,
    `directory:   ${s.dir}`,
    `device:      ${j.device}${j.kind ? ` (${j.kind}${j.dev ? `, ${j.dev}` : ""})` : ""}`,
    `filesystem:  ${j.fs_type ?? "-"}`,
    `state:       ${j.state}${j.error ? ` (${j.error})` : ""}`,
    ...(j.durability ? [`durability:  ${durabilityText(j.durability)}`] : []),
    ...(j.superseded_by ? [`superseded:  undone by the restore to ${j.superseded_by}`] : []),
    `started:     ${j.start_ns ? formatNs(j.start_ns) : "-"}`,
    `ended:       ${j.end_ns ? formatNs(j.end_ns) : "-"}`,
    `device size: ${j.size === null ? "-" : formatBytes(j.size)}` +
    (j.chunk_size ? `, chunk ${formatBytes(j.chunk_size)}` : ""),
    `saved:       ${j.chunks} chunks, ${formatBytes(j.bytes)} in ${j.records} records`,
  ];
  if (j.seq !== null) lines.push(`sequence:    ${j.seq} since activation`);
  if (j.unmounted_writes_before) {
    lines.push(`writes outside any mount before this one: ${j.unmounted_writes_before}`);
  }
  if (j.unmounted_writes_after) {
    lines.push(
      `writes outside any mount after this one: ${j.unmounted_writes_after}` +
        (j.deactivated_ns ? ` (before the deactivation at ${formatNs(j.deactivated_ns)})` : ""),
    );
  } else if (j.deactivated_ns) {
    lines.push(`deactivated: ${formatNs(j.deactivated_ns)}`);
  }
  if (s.tail) lines.push(`torn tail:   blocks.map offset ${s.tail.offset}: ${s.tail.reason}`);
  for (const p of j.problems) lines.push(`problem:     ${p}`);
  if (ranges) {
    lines.push("");
    if (ranges.length === 0) lines.push("no changed ranges");
    else {
      lines.push(
        ...formatTable(
          [{ title: "OFFSET", align: "right" }, { title: "LENGTH", align: "right" }],
          ranges.map((r) => [String(r.offset), String(r.length)]),
        ),
      );
    }
  }
  return lines;
}

/** Register `show`. */
export function register(program: Command): void {
  program
    .command("show")
    .description("one session in detail; --ranges lists the device ranges it saved")
    .argument(
      "<session>",
      "session id, its directory, latest, its number in `bdsnap sessions` or a unique id prefix",
    )
    .option("--ranges", "list the changed device byte ranges (offset, length), sorted and merged")
    .action(async (id: string, o: { ranges?: boolean }, cmd: Command) => {
      const opts = globals(cmd);
      const s = await readSessionSpec(storeRoot(opts).root, id);
      if (opts.json) printJson(showJson(s, Boolean(o.ranges)));
      else for (const l of showLines(s, o.ranges ? changedRanges(s) : null)) println(l);
    });
}
