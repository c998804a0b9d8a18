import assert from "node:assert/strict";
import {
  diffMounts,
  MountTable,
  parseMountinfo,
  parseMountinfoLine,
  unescapeMountField,
  watchMounts,
} from "../../lib/mountinfo.ts";

const SAMPLE = [
  "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro",
  "36 22 254:16 / /mnt/my\\040disk rw,noatime master:1 shared:7 - xfs /dev/vdb rw,attr2,inode64",
  "37 22 7:0 /sub /srv/tab\\011and\\012nl\\134bs rw - ext2 /var/lib/img/a\\040b.img rw",
  "38 22 0:5 / /dev rw,nosuid - devtmpfs udev rw,size=4k",
  "39 22 0:40 / /run/ünïcode rw - tmpfs tmpfs rw",
  "",
].join("\n");

Deno.test("mountinfo: fields, optional fields and the separator", () => {
  const m = parseMountinfo(SAMPLE);
  assert.equal(m.length, 5);
  assert.deepEqual(m[0], {
    mountId: 22,
    parentId: 1,
    major: 254,
    minor: 1,
    dev: "254:1",
    root: "/",
    mountPoint: "/",
    options: ["rw", "relatime"],
    optional: ["shared:1"],
    fsType: "ext4",
    source: "/dev/vda1",
    superOptions: ["rw", "errors=remount-ro"],
  });
  assert.deepEqual(m[1].optional, ["master:1", "shared:7"]);
  assert.deepEqual(m[2].optional, []);
  assert.equal(m[3].source, "udev");
  assert.equal(m[4].mountPoint, "/run/ünïcode");
});

Deno.test("mountinfo: octal escapes (space, tab, newline, backslash)", () => {
  const m = parseMountinfo(SAMPLE);
  assert.equal(m[1].mountPoint, "/mnt/my disk");
  assert.equal(m[2].mountPoint, "/srv/tab\tand\nnl\\bs");
  assert.equal(m[2].root, "/sub");
  assert.equal(m[2].source, "/var/lib/img/a b.img");
  assert.equal(unescapeMountField("plain"), "plain");
  assert.equal(unescapeMountField("a\\040b\\040c"), "a b c");
  assert.equal(unescapeMountField("no\\escape\\09"), "no\\escape\\09");
  // escaped bytes of a UTF-8 sequence are put back together
  assert.equal(unescapeMountField("\\303\\251t\\303\\251"), "été");
});

Deno.test("mountinfo: malformed lines are skipped", () => {
  assert.equal(parseMountinfoLine(""), null);
  assert.equal(parseMountinfoLine("1 2 3"), null);
  assert.equal(parseMountinfoLine("a b 1:2 / / rw - ext4 /dev/x rw"), null);
  assert.equal(parseMountinfoLine("1 2 1:2 / / rw ext4 /dev/x rw no-separator"), null);
  assert.equal(parseMountinfo("garbage\n" + SAMPLE).length, 5);
});

Deno.test("mountinfo: diff by mount id, device and mount point", () => {
  const before = parseMountinfo(SAMPLE);
  const after = parseMountinfo(
    SAMPLE.replace(/^36 .*\n/m, "") +
      "41 22 254:32 / /mnt/new rw - ext4 /dev/vdc rw\n",
  );
  const d = diffMounts(before, after);
  assert.deepEqual(d.added.map((m) => m.mountPoint), ["/mnt/new"]);
  assert.deepEqual(d.removed.map((m) => m.mountPoint), ["/mnt/my disk"]);
  assert.deepEqual(diffMounts(before, before), { added: [], removed: [] });
});

Deno.test("mountinfo: MountTable reads this process's real table", () => {
  const t = new MountTable();
  try {
    const mounts = t.read();
    assert.ok(mounts.some((m) => m.mountPoint === "/"), "the root is mounted");
    assert.deepEqual(
      parseMountinfo(Deno.readTextFileSync("/proc/self/mountinfo")).length,
      mounts.length,
    );
  } finally {
    t[Symbol.dispose]();
  }
});

Deno.test("mountinfo: wait times out when nothing changes, and wake() ends it at once", async () => {
  const t = new MountTable();
  assert.equal(await t.wait(50), "timeout");
  const started = Date.now();
  const w = t.wait(10_000);
  setTimeout(() => t.wake(), 20);
  assert.equal(await w, "woken");
  assert.ok(Date.now() - started < 2000);
  await t.close();
});

Deno.test("mountinfo: watchMounts gives the table, ticks, and stops on abort", async () => {
  const ac = new AbortController();
  const reasons: string[] = [];
  const started = Date.now();
  for await (const ev of watchMounts({ signal: ac.signal, intervalMs: 30 })) {
    reasons.push(ev.reason);
    if (ev.reason === "initial") assert.ok(ev.mounts.length > 0);
    if (reasons.length === 3) setTimeout(() => ac.abort(), 0);
  }
  assert.equal(reasons[0], "initial");
  assert.ok(reasons.slice(1).every((r) => r === "tick" || r === "changed"));
  assert.ok(Date.now() - started < 5000);
});
