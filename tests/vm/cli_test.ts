// vm: disks=1 disk-size=256M store-size=256M timeout=900
/**
 * The real CLI end to end, as an administrator and systemd use it: setup,
 * load, activate through both paths, status with the open session, sessions,
 * show, deactivate, unload; and `watch` seeing a mount and an unmount of an
 * activated device within a second.
 */
import assert from "node:assert/strict";
import { sh, testDisks } from "./_helpers.ts";
import {
  activate,
  bdsnap,
  bdsnapTry,
  deactivate,
  loadModule,
  sessions,
  unloadModule,
} from "./_bdsnap.ts";

Deno.test("setup, load, activate (syscall and ioctl), status, sessions, show, unload", async () => {
  const [dev] = testDisks();
  await loadModule();
  const version = JSON.parse(await bdsnap("status --json"));
  assert.equal(version.loaded, true, JSON.stringify(version));
  assert.equal(version.abi, 1);
  await sh(`mkfs.ext4 -q -F ${dev}`);
  for (const via of ["syscall", "ioctl"] as const) {
    await activate(dev, via);
    await sh(`mkdir -p /mnt/c && mount ${dev} /mnt/c && echo ${via} > /mnt/c/f && sync`);
    const st = JSON.parse(await bdsnap("status --json"));
    const d = st.devices.find((x: { device: string }) => x.device === dev);
    assert.equal(d.state, "open", JSON.stringify(d));
    assert.ok(d.session);
    assert.equal(st.sessions.length, 1);
    await sh("umount /mnt/c");
    await deactivate(dev, via);
  }
  const list = await sessions(dev);
  assert.equal(list.length, 2);
  assert.ok(list.every((s) => s.state === "closed"));
  const shown = JSON.parse(await bdsnap(`show ${list[0].id} --ranges --json`));
  assert.ok(Array.isArray(shown.ranges) && shown.ranges.length > 0, JSON.stringify(shown));
  const human = await bdsnap("sessions");
  assert.match(human, new RegExp(list[1].id));
  await unloadModule();
  const gone = await bdsnapTry("status");
  assert.equal(gone.code, 4);
});

Deno.test("watch reports the mount and unmount of an activated device within a second", async () => {
  const [dev] = testDisks();
  await loadModule();
  await sh(`mkfs.ext4 -q -F ${dev}`);
  await activate(dev);
  const watch = new Deno.Command("bdsnap", {
    args: ["watch", "--json"],
    env: { BDSNAP_CONFIG_DIR: "/run/bdsnap-etc" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const events: { event: string; at: number }[] = [];
  const reader = (async () => {
    let buf = "";
    for await (const chunk of watch.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) events.push({ event: JSON.parse(line).event, at: performance.now() });
      }
    }
  })();
  const waitFor = async (name: string, limitMs: number) => {
    const start = performance.now();
    while (performance.now() - start < limitMs) {
      const e = events.find((x) => x.event === name);
      if (e) return e.at;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no ${name} event within ${limitMs} ms: ${JSON.stringify(events)}`);
  };
  await waitFor("watching", 60_000);
  const mounted = await mountAt(dev);
  const started = await waitFor("session-start", 5_000);
  assert.ok(started - mounted < 1000, `session-start ${Math.round(started - mounted)} ms late`);
  await sh("umount /mnt/w");
  const unmounted = performance.now();
  const ended = await waitFor("session-end", 5_000);
  assert.ok(ended - unmounted < 1000, `session-end ${Math.round(ended - unmounted)} ms late`);
  watch.kill("SIGTERM");
  const status = await watch.status;
  await reader;
  assert.equal(status.code, 0, "watch stops cleanly on SIGTERM");
  await deactivate(dev);
});

async function mountAt(dev: string): Promise<number> {
  await sh(`mkdir -p /mnt/w && mount ${dev} /mnt/w`);
  return performance.now();
}
