import assert from "node:assert/strict";
import { buildProgram } from "../../cli/main.ts";
import { isLoaded } from "../../ffi/control.ts";
import { run } from "./_cli.ts";

const MINE = [
  "setup",
  "load",
  "unload",
  "activate",
  "deactivate",
  "status",
  "sessions",
  "show",
  "watch",
  "prune",
  "completions",
];

Deno.test("cli: --help lists every command and the global options", async () => {
  const r = await run(["--help"]);
  assert.equal(r.code, 0);
  for (const c of MINE) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, "m"), c);
  for (const o of ["--store <dir>", "--json", "-q, --quiet", "-h, --help"]) {
    assert.ok(r.stdout.includes(o), o);
  }
});

Deno.test("cli: every command has --help, with the global options shown", async () => {
  const names = buildProgram().commands.map((c) => c.name()).filter((n) => n !== "help");
  for (const c of MINE) assert.ok(names.includes(c), c);
  for (const name of names) {
    const r = await run([name, "--help"]);
    assert.equal(r.code, 0, name);
    assert.match(r.stdout, new RegExp(`^Usage: bdsnap ${name}\\b`), name);
    assert.match(r.stdout, /Global Options:[\s\S]*--json/, name);
    assert.equal(r.stderr, "", name);
    const h = await run(["help", name]);
    assert.equal(h.stdout, r.stdout, `help ${name}`);
  }
});

Deno.test("cli: command-specific options appear in help", async () => {
  const want: Record<string, string[]> = {
    setup: ["--password-file <file>", "--old-password-file <file>"],
    load: ["[params...]", "--module <file>"],
    activate: ["<dev>", "--password-file <file>", "--via <method>", '"syscall"', '"ioctl"'],
    deactivate: ["<dev>", "--password-file <file>", "--via <method>"],
    sessions: ["[dev]"],
    show: ["<session>", "--ranges"],
    watch: ["--interval <seconds>"],
    prune: ["[dev]", "--keep <n>", "--older-than <duration>", "--max-size <size>", "--dry-run"],
    completions: ["[shell]"],
  };
  for (const [cmd, parts] of Object.entries(want)) {
    const r = await run([cmd, "--help"]);
    for (const p of parts) assert.ok(r.stdout.includes(p), `${cmd}: ${p}`);
  }
  // the advanced KDF option works but is not advertised
  assert.ok(!(await run(["setup", "--help"])).stdout.includes("--kdf-iterations"));
});

Deno.test("cli: --version", async () => {
  const r = await run(["--version"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
});

Deno.test("cli: usage errors exit 2 with one line on stderr", async () => {
  const cases: string[][] = [
    [],
    ["frobnicate"],
    ["--bogus", "status"],
    ["status", "--bogus"],
    ["status", "extra-argument"],
    ["activate"],
    ["deactivate"],
    ["activate", "/dev/vdb", "--via", "carrier-pigeon"],
    ["activate", "/dev/vdb", "--password-file"],
    ["show"],
    ["prune"],
    ["prune", "--max-size", "much"],
    ["prune", "--keep", "two"],
    ["prune", "--older-than", "3 days"],
    ["completions"],
    ["completions", "tcsh"],
    ["load", "not a parameter"],
    ["load", "passwd_hash=pbkdf2-sha256$1$00$00"],
    ["load", "store_root=/x"],
    ["setup", "--kdf-iterations", "5"],
    ["setup", "--kdf-iterations", "many"],
    ["watch", "--interval", "-1"],
  ];
  for (const args of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
    assert.match(r.stderr, /bdsnap: |Usage: bdsnap/, JSON.stringify(args));
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    assert.equal(r.stdout, "", JSON.stringify(args));
  }
});

Deno.test("cli: a mistyped command gets a suggestion", async () => {
  const r = await run(["stauts"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Did you mean status\?/);
});

Deno.test({
  name: "cli: without the module, module commands exit 4 with the fix",
  ignore: isLoaded(),
  fn: async () => {
    for (
      const args of [
        ["activate", "/dev/vdb", "--password-file", "/nonexistent"],
        ["deactivate", "/dev/vdb", "--via", "ioctl"],
        ["unload"],
      ]
    ) {
      const r = await run(args);
      assert.equal(r.code, 4, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.match(r.stderr, /^bdsnap: module not loaded/);
    }
    const s = await run(["status"]);
    assert.equal(s.code, 4);
    assert.match(s.stdout, /module: +not loaded \(run `bdsnap load`\)/);
    assert.equal(s.stderr, "");
  },
});

Deno.test("cli: load explains a missing module", async () => {
  const r = await run(["load"], { BDSNAP_MODULE: "/nonexistent/bdsnap.ko" });
  if (isLoaded()) return;
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "bdsnap: module file not found: /nonexistent/bdsnap.ko (from BDSNAP_MODULE)\n",
  );
});

Deno.test("cli: global options are accepted before or after the command", async () => {
  const root = await Deno.makeTempDir();
  const a = await run(["--json", "--store", root, "sessions"]);
  const b = await run(["sessions", "--store", root, "--json"]);
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(JSON.parse(a.stdout), { store: root, sessions: [] });
  assert.equal(b.stdout, a.stdout);
  await Deno.remove(root);
});
