/**
 * The audit trail: one line per restore, prune, activate and deactivate,
 * through an injected sink; never a failure of its own, off with
 * BDSNAP_AUDIT=0.
 * @module
 */

import assert from "node:assert/strict";
import {
  type Actor,
  audited,
  auditLine,
  currentActor,
  setAuditSink,
  syslogSink,
} from "../../cli/_lib/audit.ts";
import { CliError, EXIT_PERMISSION } from "../../cli/_lib/errors.ts";
import { writeSession } from "../_store_writer.ts";
import { run } from "./_cli.ts";

const ROOT: Actor = { uid: 0, sudoUser: "alice", loginUid: 1000 };

/** Run `fn` with the audit lines collected. */
async function collecting(fn: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  setAuditSink((l) => void lines.push(l));
  try {
    await fn();
  } finally {
    setAuditSink(null);
  }
  return lines;
}

Deno.test("audit: the line says who, what and how it ended", () => {
  assert.equal(
    auditLine({ command: "restore", device: "/dev/vdb", session: "dev_vdb_X" }, ROOT, 0),
    "restore device=/dev/vdb session=dev_vdb_X uid=0 sudo_user=alice loginuid=1000 result=ok",
  );
  assert.equal(
    auditLine({ command: "activate", device: "/img/a b.img" }, {
      uid: 1000,
      sudoUser: null,
      loginUid: null,
    }, 3),
    'activate device="/img/a b.img" uid=1000 result=error exit=3',
  );
  const many = Array.from({ length: 25 }, (_, i) => `s${i}`);
  const line = auditLine({ command: "prune", removed: many }, ROOT, 0);
  assert.match(line, /^prune removed=25 ids=s0,s1,.*,s19,\+5 uid=0 /);
  assert.match(auditLine({ command: "prune", removed: [] }, ROOT, 0), /^prune removed=0 uid=0 /);
});

Deno.test("audit: who, from the environment and /proc/self/loginuid", () => {
  const saved = Deno.env.get("SUDO_USER");
  Deno.env.set("SUDO_USER", "bob");
  try {
    const a = currentActor();
    assert.equal(a.uid, Deno.uid());
    assert.equal(a.sudoUser, "bob");
    assert.ok(a.loginUid === null || Number.isInteger(a.loginUid));
  } finally {
    if (saved === undefined) Deno.env.delete("SUDO_USER");
    else Deno.env.set("SUDO_USER", saved);
  }
});

Deno.test("audit: ok, the error's exit code, and a failing sink changes nothing", async () => {
  const lines = await collecting(async () => {
    assert.equal(await audited({ command: "x" }, () => 7), 7);
    await assert.rejects(
      audited({ command: "y" }, () => {
        throw new CliError("no", EXIT_PERMISSION);
      }),
      CliError,
    );
  });
  assert.match(lines[0], /^x .*result=ok$/);
  assert.match(lines[1], /^y .*result=error exit=3$/);

  setAuditSink(() => {
    throw new Error("syslog is down");
  });
  try {
    assert.equal(await audited({ command: "z" }, () => "done"), "done");
  } finally {
    setAuditSink(null);
  }
});

Deno.test("audit: BDSNAP_AUDIT=0 turns it off", async () => {
  Deno.env.set("BDSNAP_AUDIT", "0");
  try {
    assert.deepEqual(await collecting(() => audited({ command: "x" }, () => 1)), []);
  } finally {
    Deno.env.delete("BDSNAP_AUDIT");
  }
});

Deno.test("audit: without a syslog socket nothing is started, quietly and fast", async () => {
  let exists = true;
  try {
    Deno.statSync("/dev/log");
  } catch {
    exists = false;
  }
  if (exists) return; // a syslog daemon here: the real sink would log
  const t = performance.now();
  await syslogSink("test line");
  assert.ok(performance.now() - t < 50);
});

Deno.test("audit: prune, restore and activate each write one line", async () => {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-audit-" });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(
      await writeSession(root, {
        device: "/img/a.img",
        kind: "file",
        size: 1 << 20,
        seq: i + 1,
        mountTimeNs: Date.UTC(2026, 0, 1) * 1e6 + i * 3600e9,
        state: "closed",
        records: [{ devOffset: 0, data: new Uint8Array(4096) }],
      }),
    );
  }
  const pruneDry = await collecting(() =>
    run(["--store", root, "--json", "prune", "/img/a.img", "--keep", "1", "--dry-run"])
  );
  assert.deepEqual(pruneDry, [], "a dry run changes nothing and is not audited");

  const pruned = await collecting(() =>
    run(["--store", root, "--json", "prune", "/img/a.img", "--keep", "2"])
  );
  assert.equal(pruned.length, 1);
  assert.match(
    pruned[0],
    new RegExp(`^prune device=/img/a.img removed=1 ids=${ids[0]} .*result=ok$`),
  );

  const restored = await collecting(() =>
    run(["--store", root, "restore", "/img/a.img", "--session", "nope", "--yes"])
  );
  assert.equal(restored.length, 1);
  assert.match(restored[0], /^restore device=\/img\/a.img session=nope .*result=error exit=1$/);

  const pw = `${root}/pw`;
  await Deno.writeTextFile(pw, "secret\n");
  const activated: string[] = [];
  let code = -1;
  activated.push(
    ...await collecting(async () => {
      code = (await run(["activate", "/img/a.img", "--password-file", pw])).code;
    }),
  );
  assert.equal(activated.length, 1);
  const result = code === 0 ? "ok" : `error exit=${code}`;
  assert.match(activated[0], new RegExp(`^activate device=/img/a.img .*result=${result}$`));
  await Deno.remove(root, { recursive: true });
});
