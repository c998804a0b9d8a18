/**
 * `deno task package` (scripts/package/): its templates fill completely and
 * are valid shell, the units it ships run the packaged program, the module
 * sources it takes are sources (no build products), the Deno it pins is
 * the README's, and the README's install commands need no terminal.
 */
import assert from "node:assert/strict";
import { fill } from "../../scripts/package/stage.ts";
import { PATHS, unitNames, unitProblem } from "../../scripts/package/cli_deb.ts";
import { dkmsVersion, kmodSources } from "../../scripts/package/dkms_deb.ts";
import { DENO_VERSION } from "../../scripts/package/runtime.ts";
import { VERSION } from "../../cli/main.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const TEMPLATES = `${REPO}/scripts/package`;

Deno.test("package: fill replaces every placeholder, and refuses one without a value", () => {
  assert.equal(fill("a @X@ b @Y_Z@", { X: "1", Y_Z: "2" }), "a 1 b 2");
  assert.equal(fill('exec x "$@"', {}), 'exec x "$@"');
  assert.throws(() => fill("@MISSING@", {}), /@MISSING@ has no value/);
});

Deno.test("package: maintainer scripts and the launcher are valid sh once filled", async () => {
  const vars = {
    VERSION,
    MAINTAINER: "A <a@example.org>",
    UNITS: "a.service b.timer",
    ENABLE: "a.service",
    FORM: "x",
    INSTALLED_SIZE: "1",
  };
  for (const f of ["bdsnap/postinst", "bdsnap/prerm", "bdsnap/postrm", "bdsnap/launcher.sh"]) {
    await shCheck(f, fill(await Deno.readTextFile(`${TEMPLATES}/${f}`), vars));
  }
  for (const f of ["bdsnap-dkms/postinst", "bdsnap-dkms/prerm"]) {
    await shCheck(f, fill(await Deno.readTextFile(`${TEMPLATES}/${f}`), vars));
  }
  for (const f of ["bdsnap/control", "bdsnap-dkms/control"]) {
    const control = fill(await Deno.readTextFile(`${TEMPLATES}/${f}`), vars);
    assert.match(control, new RegExp(`^Version: ${VERSION.replaceAll(".", "\\.")}$`, "m"));
    for (const l of control.split("\n")) assert.ok(l.length <= 100, `${f}: long line ${l}`);
  }
  const launcher = await Deno.readTextFile(`${TEMPLATES}/bdsnap/launcher.sh`);
  for (const flag of ["--cached-only", "--frozen", "--config", "DENO_NO_UPDATE_CHECK=1"]) {
    assert.ok(launcher.includes(flag), flag);
  }
});

async function shCheck(name: string, script: string): Promise<void> {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, script);
    const r = await new Deno.Command("sh", { args: ["-n", file], stderr: "piped" }).output();
    assert.ok(r.success, `${name}: ${new TextDecoder().decode(r.stderr)}`);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("package: every shipped unit runs the packaged program", async () => {
  const names = await unitNames(REPO);
  assert.ok(names.includes("bdsnap-watch.service") && names.includes("bdsnap-prune.timer"));
  for (const u of names) {
    assert.equal(unitProblem(await Deno.readTextFile(`${REPO}/scripts/systemd/${u}`)), null, u);
  }
  assert.equal(unitProblem(`ExecStart=${PATHS.launcher} watch`), null);
  assert.match(unitProblem("ExecStart=/usr/local/bin/bdsnap watch")!, /runs \/usr\/local\/bin/);
  assert.match(unitProblem("ExecStop=-/bin/sh -c 'bdsnap stop'")!, /runs bdsnap,/);
  assert.equal(unitProblem("# ExecStart=/usr/local/bin/bdsnap"), null, "comments are free");
});

Deno.test("package: the module's sources, without build products", async () => {
  const files = await kmodSources(REPO);
  for (const f of ["dkms.conf", "Makefile", "Kbuild", "main.c", "scripts/probe.sh"]) {
    assert.ok(files.includes(f), f);
  }
  assert.ok(files.some((f) => f.startsWith("probes/") && f.endsWith(".c")));
  assert.ok(files.some((f) => f === "include/uapi/bdsnap.h"));
  for (const f of files) {
    assert.doesNotMatch(f, /\.(o|ko|mod|mod\.c|cmd)$|^\.probes\/|^compat_probes\.h$/, f);
  }
  assert.equal(dkmsVersion('PACKAGE_VERSION="1.2.3"\n'), "1.2.3");
});

Deno.test("package: the Deno it ships is the one the README pins", async () => {
  const readme = await Deno.readTextFile(`${REPO}/README.md`);
  assert.ok(readme.includes(`npx -y deno@${DENO_VERSION} task`), DENO_VERSION);
});

Deno.test("README: 'Install on a server' is one sh block that needs no terminal", async () => {
  const readme = await Deno.readTextFile(`${REPO}/README.md`);
  const m = /\n## Install on a server\n\n```sh\n([\s\S]*?)\n```\n/.exec(readme);
  assert.ok(m, "no sh block right under the heading");
  const lines = m[1].split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  assert.ok(lines.some((l) => l.includes("task package")));
  assert.ok(
    lines.some((l) => /apt-get install -y \.\/bdsnap-dkms_\*\.deb \.\/bdsnap_\*\.deb/.test(l)),
  );
  for (const l of lines) {
    if (/\bbdsnap (setup|activate|deactivate)\b/.test(l)) assert.match(l, /--password-file /, l);
    if (/\bapt(-get)? install\b/.test(l)) assert.match(l, / -y /, l);
  }
  assert.ok(lines.includes("bdsnap load"));
});
