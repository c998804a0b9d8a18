import assert from "node:assert/strict";
import { type StatusData, statusJson, statusLines } from "../../cli/status.ts";
import { eventLine, SessionTracker, type WatchEvent } from "../../cli/watch.ts";
import type { DeviceInfo } from "../../ffi/uapi.ts";
import { type MountEntry, parseMountinfo } from "../../lib/mountinfo.ts";
import { spawn } from "./_cli.ts";

function device(over: Partial<DeviceInfo> = {}): DeviceInfo {
  return {
    name: "/dev/vdb",
    sessionId: "",
    kind: 1,
    state: 0,
    major: 254,
    minor: 16,
    error: 0,
    flags: 0,
    sessions: 0,
    chunksSaved: 0,
    bytesSaved: 0,
    pendingBytes: 0,
    unmountedWrites: 0,
    ...over,
  };
}

const LOADED: StatusData = {
  loaded: true,
  version: {
    major: 0,
    minor: 1,
    patch: 0,
    abi: 1,
    nrActivate: 335,
    nrDeactivate: 336,
    flags: 1,
    chunkSize: 4096,
    storeRoot: "/snapshot",
  },
  syscalls: { activate: 335, deactivate: 336 },
  counters: {
    devices: 1,
    sessions: 1,
    inflightBytes: 0,
    inflightPeak: 1 << 20,
    inflightLimit: 64 << 20,
    chunksSaved: 10,
    bytesSaved: 40960,
    sessionsFailed: 0,
    authFailures: 2,
  },
  devices: [
    device({
      sessionId: "dev_vdb_20261122T072301.123456Z",
      state: 1,
      sessions: 1,
      chunksSaved: 10,
      bytesSaved: 40960,
    }),
  ],
  store: {
    root: "/snapshot",
    source: "module",
    space: { size: 20 * 2 ** 30, free: 12 * 2 ** 30, available: 11 * 2 ** 30 },
  },
};

Deno.test("status --json: stable shape, loaded", () => {
  const j = statusJson(LOADED);
  assert.deepEqual(j, {
    loaded: true,
    version: "0.1.0",
    abi: 1,
    syscalls: { activate: 335, deactivate: 336 },
    password_set: true,
    chunk_size: 4096,
    store: {
      root: "/snapshot",
      source: "module",
      size_bytes: 20 * 2 ** 30,
      free_bytes: 11 * 2 ** 30,
    },
    counters: {
      devices: 1,
      sessions: 1,
      inflight_bytes: 0,
      inflight_peak: 1 << 20,
      inflight_limit: 64 << 20,
      chunks_saved: 10,
      bytes_saved: 40960,
      sessions_failed: 0,
      auth_failures: 2,
    },
    devices: [{
      device: "/dev/vdb",
      kind: "block",
      dev: "254:16",
      state: "open",
      session: "dev_vdb_20261122T072301.123456Z",
      error: null,
      deactivating: false,
      sessions: 1,
      chunks_saved: 10,
      bytes_saved: 40960,
      pending_bytes: 0,
      unmounted_writes: 0,
    }],
    sessions: [{
      id: "dev_vdb_20261122T072301.123456Z",
      device: "/dev/vdb",
      dev: "254:16",
      state: "open",
      error: null,
      chunks_saved: 10,
      bytes_saved: 40960,
      pending_bytes: 0,
    }],
  });
});

Deno.test("status --json: the same keys when the module is not loaded", () => {
  const j = statusJson({
    loaded: false,
    version: null,
    syscalls: null,
    counters: null,
    devices: [],
    store: { root: "/snapshot", source: "default", space: null },
  });
  assert.deepEqual(Object.keys(j), Object.keys(statusJson(LOADED)));
  assert.equal(j.loaded, false);
  assert.deepEqual(j.devices, []);
  assert.deepEqual(j.sessions, []);
  assert.equal(j.store.free_bytes, null);
});

Deno.test("status: human report with units", () => {
  const failed = device({
    name: "/img/a.img",
    kind: 2,
    state: 2,
    error: -28,
    sessionId: "img_a.img_20261122T080000.000000Z",
    flags: 1,
    major: 7,
    minor: 0,
    unmountedWrites: 3,
  });
  const lines = statusLines({ ...LOADED, devices: [...LOADED.devices, failed] });
  const text = lines.join("\n");
  assert.match(text, /^module: +loaded, version 0\.1\.0 \(ABI 1\), password set$/m);
  assert.match(text, /^syscalls: +activate_snapshot 335, deactivate_snapshot 336$/m);
  assert.match(text, /^store: +\/snapshot \(11\.0 GiB free of 20\.0 GiB\)$/m);
  assert.match(text, /^in flight: +0 B \(peak 1\.0 MiB, limit 64\.0 MiB\)$/m);
  assert.match(text, /^DEVICE +KIND +DEV +STATE +SESSION +CHUNKS +SAVED +PENDING$/m);
  assert.match(text, /^\/dev\/vdb +block +254:16 +open +dev_vdb_\S+ +10 +40\.0 KiB +0 B$/m);
  assert.match(text, /^\/img\/a\.img +file +7:0 +failed \(deactivating\) +img_a/m);
  assert.match(text, /^\/img\/a\.img: session failed: No space left on device \(ENOSPC\)$/m);
  assert.match(text, /^\/img\/a\.img: 3 writes outside any mount/m);
  assert.deepEqual(statusLines({ ...LOADED, devices: [] }).at(-1), "no activated devices");
});

const ROOT = "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n";
const mounts = (extra = ""): MountEntry[] => parseMountinfo(ROOT + extra);
const MNT = "40 22 254:16 / /mnt/a\\040b rw - ext4 /dev/vdb rw\n";

Deno.test("watch: session start, end, failure, activation and module events", () => {
  const t = new SessionTracker();
  const now = new Date("2026-11-22T07:00:00Z");
  const kinds = (es: WatchEvent[]) => es.map((e) => e.event);

  assert.deepEqual(t.update(mounts(), null, now), []);
  assert.deepEqual(kinds(t.update(mounts(), [device()], now)), ["module-loaded", "activated"]);
  // a mount of an unrelated device says nothing
  assert.deepEqual(
    t.update(mounts("41 22 254:32 / /x rw - xfs /dev/vdc rw\n"), [device()], now),
    [],
  );

  const open = device({ state: 1, sessionId: "dev_vdb_1", chunksSaved: 1, bytesSaved: 4096 });
  let es = t.update(mounts(MNT), [open], now);
  assert.deepEqual(kinds(es), ["session-start"]);
  assert.deepEqual(es[0], {
    time: "2026-11-22T07:00:00.000Z",
    event: "session-start",
    device: "/dev/vdb",
    dev: "254:16",
    session: "dev_vdb_1",
    mount_point: "/mnt/a b",
    fs_type: "ext4",
    state: "open",
    error: null,
    chunks_saved: 1,
    bytes_saved: 4096,
    pending_bytes: 0,
  });
  // a second (bind) mount of the same device is the same session
  assert.deepEqual(
    t.update(mounts(MNT + "42 22 254:16 / /other rw - ext4 /dev/vdb rw\n"), [open], now),
    [],
  );
  assert.deepEqual(kinds(t.counters(now)), ["counters"]);

  // unmounted: the session id and counters as last seen open
  es = t.update(mounts(), [device({ sessions: 1 })], now);
  assert.deepEqual(kinds(es), ["session-end"]);
  assert.equal(es[0].session, "dev_vdb_1");
  assert.equal(es[0].mount_point, "/mnt/a b");
  assert.equal(es[0].bytes_saved, 4096);

  // a session that fails while mounted
  t.update(mounts(MNT), [device({ state: 1, sessionId: "dev_vdb_2" })], now);
  es = t.update(mounts(MNT), [device({ state: 2, sessionId: "dev_vdb_2", error: -28 })], now);
  assert.deepEqual(kinds(es), ["session-failed"]);
  assert.equal(es[0].error, "No space left on device (ENOSPC)");
  assert.deepEqual(
    t.update(mounts(MNT), [device({ state: 2, sessionId: "dev_vdb_2", error: -28 })], now),
    [],
  );

  // deactivated and unmounted at once, then the module goes away
  es = t.update(mounts(), [], now);
  assert.deepEqual(kinds(es), ["session-end", "deactivated"]);
  assert.deepEqual(kinds(t.update(mounts(), null, now)), ["module-unloaded"]);
});

Deno.test("watch: a file-backed device ends its session when its loop device goes", () => {
  const t = new SessionTracker();
  const img = device({ name: "/img/a.img", kind: 2, major: 7, minor: 0 });
  t.update(mounts(), [img]);
  const es = t.update(mounts("40 22 7:0 / /mnt rw - ext2 /dev/loop0 rw\n"), [{
    ...img,
    state: 1,
    sessionId: "s",
  }]);
  assert.equal(es[0].event, "session-start");
  const end = t.update(mounts(), [{ ...img, major: 0, minor: 0 }]);
  assert.deepEqual(end.map((e) => e.event), ["session-end"]);
});

Deno.test("watch: human lines", () => {
  const base: WatchEvent = {
    time: "2026-11-22T07:00:00.000Z",
    event: "session-start",
    device: "/dev/vdb",
    dev: "254:16",
    session: "dev_vdb_1",
    mount_point: "/mnt",
    fs_type: "ext4",
    state: "open",
    error: null,
    chunks_saved: 3,
    bytes_saved: 12288,
    pending_bytes: 0,
  };
  assert.match(
    eventLine(base),
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}session start {3}\/dev\/vdb {2}dev_vdb_1 {2}ext4 on \/mnt$/,
  );
  assert.match(
    eventLine({ ...base, event: "session-end", state: "closed" }),
    /session end +\/dev\/vdb +dev_vdb_1 +closed, 3 chunks, 12\.0 KiB$/,
  );
  assert.match(
    eventLine({ ...base, event: "session-failed", error: "No space left on device (ENOSPC)" }),
    /session FAILED .*\(ENOSPC\)$/,
  );
});

Deno.test("watch: runs in the foreground and stops cleanly on SIGTERM and SIGINT", async () => {
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    const child = spawn(["--json", "watch"], { BDSNAP_PASSWORD_FILE: "" });
    const reader = child.stdout.getReader();
    const first = await reader.read();
    const line = new TextDecoder().decode(first.value).split("\n")[0];
    const ev = JSON.parse(line);
    assert.equal(ev.event, "watching");
    assert.equal(typeof ev.module_loaded, "boolean");
    const t = Date.now();
    child.kill(sig);
    reader.releaseLock();
    await child.stdout.cancel();
    const st = await child.status;
    const err = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    assert.equal(st.code, 0, `${sig}: ${err}`);
    assert.ok(Date.now() - t < 2000, "stops within 2 s");
  }
});
