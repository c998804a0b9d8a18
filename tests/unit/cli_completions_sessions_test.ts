/**
 * Session ids complete in every shell: the scripts call back
 * `bdsnap completions --list-sessions [DEV]`, and bash, run for real,
 * offers that device's sessions after `--session`.
 * @module
 */

import assert from "node:assert/strict";
import { writeSession } from "../_store_writer.ts";
import { MAIN, run } from "./_cli.ts";

const T0 = Date.UTC(2026, 10, 1, 8, 0, 0) * 1e6;

async function store(devices: string[]) {
  const root = await Deno.makeTempDir({ prefix: "bdsnap-compl-" });
  const ids: Record<string, string> = {};
  for (const [i, device] of devices.entries()) {
    ids[device] = await writeSession(root, {
      device,
      kind: "file",
      size: 1 << 20,
      seq: 1,
      mountTimeNs: T0 + i * 3600e9,
      state: "closed",
      records: [{ devOffset: 0, data: new Uint8Array(4096) }],
    });
  }
  return { root, ids };
}

Deno.test("completions --list-sessions: latest and the device's session ids", async () => {
  const { root, ids } = await store(["/img/a.img", "/img/b.img"]);
  const all = await run(["--store", root, "completions", "--list-sessions"]);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(all.stdout.trimEnd().split("\n"), [
    "latest",
    ids["/img/a.img"],
    ids["/img/b.img"],
  ]);
  const one = await run(["--store", root, "completions", "--list-sessions", "/img/b.img"]);
  assert.deepEqual(one.stdout.trimEnd().split("\n"), ["latest", ids["/img/b.img"]]);
  const none = await run(["--store", `${root}/missing`, "completions", "--list-sessions"]);
  assert.deepEqual([none.code, none.stdout, none.stderr], [0, "latest\n", ""]);
  assert.equal((await run(["completions"])).code, 2, "a shell or --list-sessions is needed");
  await Deno.remove(root, { recursive: true });
});

Deno.test("completions: every script has the session hook", async () => {
  const hook = /completions --list-sessions/;
  const bash = (await run(["completions", "bash"])).stdout;
  assert.match(bash, hook);
  assert.match(bash, /--session\) COMPREPLY=\(\$\(compgen -W "\$\(_bdsnap_sessions "\$dev"\)"/);
  const zsh = (await run(["completions", "zsh"])).stdout;
  assert.match(zsh, hook);
  assert.match(zsh, /'--session\[[^\]]*\]:session:_bdsnap_sessions'/);
  assert.match(zsh, /'\*:session:_bdsnap_sessions all'/);
  const fish = (await run(["completions", "fish"])).stdout;
  assert.match(fish, hook);
  assert.match(
    fish,
    /^complete -c bdsnap -n '__fish_seen_subcommand_from restore' -l session -r -a '\(__bdsnap_sessions\)'/m,
  );
  assert.ok(!bash.includes("list-sessions [dev]"), "the hook stays out of the scripts' options");
  assert.ok(!(await run(["completions", "--help"])).stdout.includes("list-sessions"), "hidden");
});

Deno.test("completions: bash completes --session with the sessions of the DEV typed", async () => {
  const { root, ids } = await store(["/img/a.img", "/img/b.img"]);
  const script = (await run(["completions", "bash"])).stdout;
  const complete = async (line: string) => {
    const words = line.split(" ");
    const prog = `${script}
bdsnap() { "${Deno.execPath()}" run -A --quiet "${MAIN}" "$@"; }
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}
_bdsnap; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = await new Deno.Command("bash", { args: ["-c", prog], stdout: "piped" }).output();
    return new TextDecoder().decode(r.stdout).trim().split("\n").filter((x) => x !== "");
  };
  try {
    assert.deepEqual(
      await complete(`bdsnap --store ${root} restore /img/b.img --session `),
      ["latest", ids["/img/b.img"]],
    );
    assert.deepEqual(
      await complete(`bdsnap --store ${root} export /img/a.img --output x --session l`),
      ["latest"],
    );
    assert.deepEqual(
      await complete(`bdsnap --store ${root} show `),
      ["latest", ids["/img/a.img"], ids["/img/b.img"]],
    );
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e; // no bash: nothing to run
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
