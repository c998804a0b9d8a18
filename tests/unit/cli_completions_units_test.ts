import assert from "node:assert/strict";
import { buildProgram } from "../../cli/main.ts";
import { describe } from "../../cli/completions.ts";
import { formatBytes, formatLocalTime, isoFromNs, parseDuration } from "../../cli/_lib/units.ts";
import { formatTable } from "../../cli/_lib/table.ts";
import { absolutePath } from "../../cli/_lib/activation.ts";
import { run } from "./_cli.ts";

async function shellCheck(shell: string, script: string): Promise<boolean | null> {
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, script);
  try {
    const r = await new Deno.Command(shell, { args: ["-n", file], stderr: "piped" }).output();
    if (!r.success) throw new Error(`${shell} -n: ${new TextDecoder().decode(r.stderr)}`);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null; // shell not installed
    throw e;
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("completions: every command in every shell, syntax checked where the shell exists", async () => {
  const names = buildProgram().commands.map((c) => c.name());
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await run(["completions", shell]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of names) assert.ok(r.stdout.includes(n), `${shell}: ${n}`);
    for (const opt of ["password-file", "via", "store", "keep", "older-than", "ranges"]) {
      assert.ok(r.stdout.includes(opt), `${shell}: ${opt}`);
    }
    assert.ok(!r.stdout.includes("kdf-iterations"), "hidden options stay hidden");
    await shellCheck(shell, r.stdout);
  }
  assert.match(
    (await run(["completions", "bash"])).stdout,
    /^complete -o filenames -F _bdsnap bdsnap$/m,
  );
  assert.match((await run(["completions", "zsh"])).stdout, /^#compdef bdsnap$/m);
  assert.match(
    (await run(["completions", "fish"])).stdout,
    /^complete -c bdsnap -n '__fish_seen_subcommand_from activate' -l via -r -a 'syscall ioctl'/m,
  );
});

Deno.test("completions: bash completes commands, options and choices", async () => {
  const script = (await run(["completions", "bash"])).stdout;
  const complete = async (line: string) => {
    const words = line.split(" ");
    const prog = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}
_bdsnap; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = await new Deno.Command("bash", { args: ["-c", prog], stdout: "piped" }).output();
    return new TextDecoder().decode(r.stdout).trim().split("\n").filter((x) => x !== "").sort();
  };
  try {
    assert.deepEqual(await complete("bdsnap se"), ["sessions", "setup"]);
    assert.deepEqual(await complete("bdsnap activate --v"), ["--version", "--via"]);
    assert.deepEqual(await complete("bdsnap activate /dev/vdb --via "), ["ioctl", "syscall"]);
    assert.deepEqual(await complete("bdsnap completions "), ["bash", "fish", "zsh"]);
    assert.deepEqual(await complete("bdsnap --store /tmp prune --k"), ["--keep"]);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // no bash
    throw e;
  }
});

Deno.test("completions: the spec follows the command tree", () => {
  const spec = describe(buildProgram());
  const by = Object.fromEntries(spec.commands.map((c) => [c.name, c]));
  assert.equal(by.activate.args, "file");
  assert.equal(by.show.args, "session");
  assert.equal(by.completions.args, "words");
  assert.deepEqual(by.completions.argWords, ["bash", "zsh", "fish"]);
  assert.equal(spec.globals.find((o) => o.long === "--store")?.value, "dir");
  assert.equal(by.setup.options.find((o) => o.long === "--password-file")?.value, "file");
});

Deno.test("units: byte sizes in binary units", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1024), "1.0 KiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(64 * 2 ** 20), "64.0 MiB");
  assert.equal(formatBytes(3 * 2 ** 30 + 2 ** 29), "3.5 GiB");
  assert.equal(formatBytes(2 ** 40), "1.0 TiB");
});

Deno.test("units: local times and ISO times", () => {
  const ms = new Date(2026, 10, 22, 7, 3, 9).getTime(); // local time
  assert.equal(formatLocalTime(ms), "2026-11-22 07:03:09");
  assert.equal(formatLocalTime(0), "-");
  assert.equal(
    isoFromNs(Date.UTC(2026, 0, 2, 3, 4, 5, 678) * 1e6 + 999),
    "2026-01-02T03:04:05.678Z",
  );
  assert.equal(isoFromNs(0), null);
});

Deno.test("units: durations", () => {
  assert.equal(parseDuration("45s"), 45_000);
  assert.equal(parseDuration("15m"), 900_000);
  assert.equal(parseDuration("12h"), 43_200_000);
  assert.equal(parseDuration("30d"), 30 * 86_400_000);
  assert.equal(parseDuration("2w"), 14 * 86_400_000);
  assert.equal(parseDuration("1d12h"), 36 * 3_600_000);
  for (const bad of ["", "3", "d", "3 days", "1.5d", "-1d", "1y"]) {
    assert.throws(() => parseDuration(bad), SyntaxError, bad);
  }
});

Deno.test("table: aligned columns, no trailing spaces", () => {
  assert.deepEqual(
    formatTable([{ title: "NAME" }, { title: "SIZE", align: "right" }, { title: "STATE" }], [
      ["a", "1.0 KiB", "open"],
      ["longer-name", "10 B", ""],
    ]),
    [
      "NAME            SIZE  STATE",
      "a            1.0 KiB  open",
      "longer-name     10 B",
    ],
  );
});

Deno.test("paths: devices are made absolute, symbolic links left alone", () => {
  assert.equal(absolutePath("/dev/vdb"), "/dev/vdb");
  assert.equal(absolutePath("disk.img", "/srv/img"), "/srv/img/disk.img");
  assert.equal(absolutePath("../a/./b.img", "/srv/img"), "/srv/a/b.img");
});
