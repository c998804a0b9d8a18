import assert from "node:assert/strict";
import { parseMountinfo } from "../../lib/mountinfo.ts";
import { filesystemsOf, refuseSeveral } from "../../cli/_lib/live_session.ts";
import { CliError } from "../../cli/_lib/errors.ts";

// /dev/vdb1 mounted twice (a bind mount shares its filesystem), /dev/vdb2 once.
const MOUNTS = parseMountinfo([
  "30 1 254:17 / /data rw,relatime shared:5 - ext4 /dev/vdb1 rw",
  "31 1 254:17 /sub /srv/sub rw,relatime shared:5 - ext4 /dev/vdb1 rw",
  "32 1 254:18 / /logs rw,relatime shared:6 - xfs /dev/vdb2 rw",
].join("\n"));

Deno.test("live session: one filesystem per device number, its first mount", () => {
  const fss = filesystemsOf(MOUNTS);
  assert.deepEqual(fss.map((m) => [m.mountPoint, m.fsType]), [["/data", "ext4"], ["/logs", "xfs"]]);
  assert.deepEqual(filesystemsOf(MOUNTS.slice(0, 2)).map((m) => m.mountPoint), ["/data"]);
  assert.deepEqual(filesystemsOf([]), []);
});

Deno.test("live session: two filesystems on the device are refused before activating, naming both", () => {
  refuseSeveral("/dev/vdb", filesystemsOf(MOUNTS.slice(0, 2)));
  refuseSeveral("/dev/vdb", []);
  assert.throws(
    () => refuseSeveral("/dev/vdb", filesystemsOf(MOUNTS)),
    (e) =>
      e instanceof CliError && e.code === "busy" &&
      /carries 2 mounted filesystems \(\/data \(ext4 on \/dev\/vdb1\), \/logs \(xfs on \/dev\/vdb2\)\)/
        .test(e.message) &&
      /Unmount all but one/.test(e.message),
  );
});
