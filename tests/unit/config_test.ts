import assert from "node:assert/strict";
import {
  ConfigError,
  configPath,
  parseConfig,
  readConfig,
  withDevice,
  withoutDevice,
  writeConfig,
} from "../../lib/config.ts";
import { unmountedStoreMount } from "../../lib/mountinfo.ts";
import { run } from "./_cli.ts";

const vdb = { identity: "serial:disk-a", path: "/dev/vdb", kind: "block" as const };

Deno.test("config: written 0600 and read back; devices replaced by identity", async () => {
  const dir = `${await Deno.makeTempDir({ prefix: "bdsnap-config-" })}/etc`;
  assert.deepEqual(await readConfig(dir), { format: 1, devices: [] }, "no file: empty");
  let c = withDevice(await readConfig(dir), vdb);
  c = withDevice(c, { ...vdb, path: "/dev/vdc" }); // the same disk, renumbered
  c = withDevice(c, { identity: "", path: "/dev/ram0", kind: "block" });
  await writeConfig(dir, { ...c, store: "/snapshot", retention: { keep: 3 } });
  assert.equal((await Deno.stat(configPath(dir))).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  const back = await readConfig(dir);
  assert.deepEqual(back.devices.map((d) => d.path), ["/dev/vdc", "/dev/ram0"]);
  assert.equal(back.retention?.keep, 3);
  const { config, removed } = withoutDevice(back, { ...vdb, path: "/dev/sdz" });
  assert.ok(removed, "found by identity whatever its path");
  assert.deepEqual(config.devices.map((d) => d.path), ["/dev/ram0"]);
  assert.equal(withoutDevice(config, vdb).removed, false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("config: bad files are refused with the file and the key", () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => parseConfig(text, "/etc/bdsnap/bdsnap.json"), (e) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^\/etc\/bdsnap\/bdsnap\.json: /);
      assert.match(e.message, re);
      return true;
    });
  bad("{", /not valid JSON/);
  bad("[]", /not a JSON object/);
  bad('{"format": 2}', /"format" must be 1/);
  bad('{"format": 1, "stores": "/x"}', /unknown key\(s\) "stores"/);
  bad('{"format": 1, "store": "snap"}', /"store" must be an absolute path/);
  bad('{"format": 1, "module_params": "a=1"}', /"module_params"/);
  bad('{"format": 1, "retention": {"keep": 0}}', /retention.keep/);
  bad('{"format": 1, "retention": {"days": 3}}', /"retention"/);
  bad(
    '{"format": 1, "devices": [{"identity": "x", "path": "dev/vdb", "kind": "block"}]}',
    /devices\[0\]\.path/,
  );
  bad(
    '{"format": 1, "devices": [{"identity": "x", "path": "/dev/vdb", "kind": "disk"}]}',
    /devices\[0\]\.kind/,
  );
});

Deno.test("start: a store root under an fstab mount point not mounted yet is found", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-fstab-" });
  await Deno.writeTextFile(
    `${dir}/fstab`,
    "# comment\nUUID=1 / ext4 defaults 0 1\nUUID=2 /srv ext4 defaults 0 2\n" +
      "UUID=3 /srv/snap ext4 noauto 0 2\n/dev/sdb2 none swap sw 0 0\n",
  );
  const mi = (points: string[]) =>
    points.map((p, i) => `${20 + i} 1 8:${i} / ${p} rw - ext4 /dev/sda${i} rw`).join("\n") + "\n";
  await Deno.writeTextFile(`${dir}/mounted`, mi(["/", "/srv"]));
  await Deno.writeTextFile(`${dir}/early`, mi(["/"]));
  const f = (path: string, m: string) => unmountedStoreMount(path, `${dir}/fstab`, `${dir}/${m}`);
  assert.equal(f("/snapshot", "early"), null, "on the root filesystem");
  assert.equal(f("/srv/snapshot", "early"), "UUID=2 (/srv)");
  assert.equal(f("/srv/snapshot", "mounted"), null);
  assert.equal(f("/srv/snap/x", "early"), "UUID=2 (/srv)", "noauto entries are not boot mounts");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("prune: with no policy on the command line, the configuration's, else a usage error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-prune-config-" });
  const store = `${dir}/store`;
  await Deno.mkdir(store, { mode: 0o700 });
  const env = { BDSNAP_CONFIG_DIR: `${dir}/etc` };
  let r = await run(["--store", store, "prune", "--dry-run"], env);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /set "retention" in .*bdsnap\.json/);
  await writeConfig(`${dir}/etc`, { format: 1, devices: [], retention: { older_than: "soon" } });
  r = await run(["--store", store, "prune", "--dry-run"], env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /retention\.older_than/);
  await writeConfig(`${dir}/etc`, {
    format: 1,
    devices: [],
    retention: { keep: 2, older_than: "30d" },
  });
  r = await run(["--store", store, "prune", "--dry-run", "--json"], env);
  assert.equal(r.code, 0, r.stderr);
  await Deno.remove(dir, { recursive: true });
});
