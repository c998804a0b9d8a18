/**
 * bdsnap(8) (scripts/man.ts) is generated from the command tree: it names
 * every command and every option of it, hides what the tree hides, and is
 * valid roff (checked with groff where it is installed).
 */
import assert from "node:assert/strict";
import type { Command } from "../../cli/_lib/commander.ts";
import { buildProgram } from "../../cli/main.ts";
import { bdsnapManPage, manPage } from "../../scripts/man.ts";
import { flags, paragraphs, text } from "../../scripts/man/roff.ts";
import { markdownTable } from "../../scripts/man/sections.ts";

const CLI_MD = await Deno.readTextFile(new URL("../../docs/CLI.md", import.meta.url));

function page(): string {
  return manPage(buildProgram(), { version: "9.9.9", date: "2026-01-02", cliMd: CLI_MD });
}

/** Every command of the tree, the program's own help command included. */
function commands(cmd: Command): Command[] {
  const help = cmd.createHelp();
  return help.visibleCommands(cmd).flatMap((c) => [c, ...commands(c)]);
}

Deno.test("man page: every command of the tree has its section", () => {
  const p = page();
  const all = commands(buildProgram());
  assert.ok(all.length > 10);
  for (const c of all) {
    assert.ok(p.includes(`\n.SS "${text(c.name())}"\n`), `no section for ${c.name()}`);
    if (c.description()) assert.ok(p.includes(text(c.description())), `${c.name()}: description`);
  }
});

Deno.test("man page: every option and argument of every command, and no hidden one", () => {
  const p = page();
  const program = buildProgram();
  const help = program.createHelp();
  for (const cmd of [program, ...commands(program)]) {
    for (const o of cmd.options) {
      for (const f of [o.long, o.short].filter((x): x is string => Boolean(x))) {
        if (o.hidden) assert.ok(!p.includes(text(f)), `${cmd.name()}: hidden ${f} shown`);
        else assert.ok(p.includes(text(f)), `${cmd.name()}: ${f} missing`);
      }
      if (!o.hidden) assert.ok(p.includes(text(help.optionDescription(o)).split("\n")[0]));
    }
    for (const a of cmd.registeredArguments) {
      assert.ok(p.includes(`\\fI${text(a.name())}`), `${cmd.name()}: argument ${a.name()}`);
    }
  }
  assert.ok(p.includes(text("--help")));
  assert.ok(!p.includes("kdf\\-iterations"));
});

Deno.test("man page: header, exit status and environment from docs/CLI.md, Secure Boot", () => {
  const p = page();
  assert.match(p, /^\.TH BDSNAP 8 "2026\\-01\\-02" "bdsnap 9\.9\.9" "System Administration"$/m);
  for (const [code] of markdownTable(CLI_MD, "Exit codes")) {
    assert.match(p, new RegExp(`^\\.TP\\n\\\\fB${code}\\\\fR$`, "m"));
  }
  assert.ok(markdownTable(CLI_MD, "Environment").length >= 5);
  assert.ok(p.includes("\\fBBDSNAP_MODULE\\fR"));
  assert.ok(p.includes('.SH "SECURE BOOT"'));
  assert.ok(p.includes(text("mokutil --import /var/lib/dkms/mok.pub")));
});

Deno.test("man page: roff escaping keeps help text from becoming requests", () => {
  assert.equal(text(".TH x"), "\\&.TH x");
  assert.equal(text("'x"), "\\&'x");
  assert.equal(text("a\\b-c"), "a\\eb\\-c");
  assert.equal(text("1 … 2"), "1 \\[u2026] 2");
  assert.equal(flags("--module <file>"), "\\fB\\-\\-module \\fR\\fIfile\\fR");
  assert.deepEqual(paragraphs("one\ntwo\n\nx:  aligned\ny:  too"), [
    ".PP",
    "one",
    "two",
    ".PP",
    ".nf",
    "x:  aligned",
    "y:  too",
    ".fi",
  ]);
});

Deno.test("man page: groff reads it without a warning", async () => {
  const roff = await bdsnapManPage();
  let child;
  try {
    child = new Deno.Command("groff", {
      args: ["-man", "-ww", "-z"],
      stdin: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // no groff here
    throw e;
  }
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(roff));
  await w.close();
  const r = await child.output();
  assert.equal(new TextDecoder().decode(r.stderr), "");
  assert.ok(r.success);
});
