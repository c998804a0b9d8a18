import assert from "node:assert/strict";
import {
  choosePasswordSource,
  getNewPassword,
  getPassword,
  MAX_PASSWORD_BYTES,
  passwordFromText,
  passwordProblem,
  readPasswordFile,
} from "../../cli/_lib/password.ts";
import { CliError } from "../../cli/_lib/errors.ts";
import { parseHash, verifyPassword } from "../../lib/kdf.ts";
import { run, runChild } from "./_cli.ts";

Deno.test("password source: option, then environment file, then prompt, else usage error", () => {
  assert.deepEqual(choosePasswordSource({ file: "/a", envFile: "/b", isTerminal: true }), {
    kind: "file",
    path: "/a",
    from: "option",
  });
  assert.deepEqual(choosePasswordSource({ envFile: "/b", isTerminal: true }), {
    kind: "file",
    path: "/b",
    from: "env",
  });
  assert.deepEqual(choosePasswordSource({ envFile: "", isTerminal: true }), { kind: "prompt" });
  assert.deepEqual(choosePasswordSource({ isTerminal: true }), { kind: "prompt" });
  assert.throws(
    () => choosePasswordSource({ envFile: "", isTerminal: false }),
    (e: unknown) =>
      e instanceof CliError && e.exitCode === 2 &&
      /not on a terminal, so give --password-file F or set BDSNAP_PASSWORD_FILE/.test(e.message) &&
      /never taken from the command line/.test(e.message),
  );
  assert.throws(
    () => choosePasswordSource({ isTerminal: false, optionName: "--old-password-file" }),
    /give --old-password-file F \(passwords/,
  );
});

Deno.test("password file: the first line, without its line end", async () => {
  assert.equal(passwordFromText("secret\n"), "secret");
  assert.equal(passwordFromText("secret\r\nsecond line\n"), "secret");
  assert.equal(passwordFromText("no newline"), "no newline");
  assert.equal(passwordFromText("  spaces kept  \n"), "  spaces kept  ");
  assert.equal(passwordFromText("\nsecond"), "");
  await assert.rejects(
    () => readPasswordFile("/nonexistent/pw"),
    (e: unknown) =>
      e instanceof CliError &&
      e.message === "cannot read password file /nonexistent/pw: no such file",
  );
});

Deno.test("password rules: empty, NUL, too long always; too short for a new one", () => {
  assert.equal(passwordProblem("", false), "the password is empty");
  assert.equal(passwordProblem("a\0b", false), "the password contains a NUL character");
  assert.equal(passwordProblem("x".repeat(MAX_PASSWORD_BYTES), true), null);
  assert.equal(
    passwordProblem("x".repeat(MAX_PASSWORD_BYTES + 1), false),
    "the password is longer than 255 bytes",
  );
  assert.equal(passwordProblem("é".repeat(128), false), "the password is longer than 255 bytes");
  assert.equal(passwordProblem("short", false), null, "the kernel decides about old passwords");
  assert.equal(passwordProblem("short12", true), "the password is shorter than 8 characters");
  assert.equal(passwordProblem("12345678", true), null);
  assert.equal(passwordProblem("ééééééé", true), "the password is shorter than 8 characters");
});

Deno.test("password: from --password-file and from BDSNAP_PASSWORD_FILE", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/a`, "from-option\n");
  await Deno.writeTextFile(`${dir}/b`, "from-env\n");
  await Deno.writeTextFile(`${dir}/empty`, "\n");
  const saved = Deno.env.get("BDSNAP_PASSWORD_FILE");
  try {
    Deno.env.set("BDSNAP_PASSWORD_FILE", `${dir}/b`);
    assert.equal(await getPassword({ file: `${dir}/a` }), "from-option");
    assert.equal(await getPassword({}), "from-env");
    Deno.env.set("BDSNAP_PASSWORD_FILE", `${dir}/empty`);
    await assert.rejects(() => getPassword({}), /the password is empty \(in .*empty\)/);
    await Deno.writeTextFile(`${dir}/short`, "abc\n");
    await assert.rejects(
      () => getNewPassword(`${dir}/short`),
      (e: unknown) => e instanceof CliError && e.exitCode === 2,
    );
    await Deno.writeTextFile(`${dir}/long`, "long enough\n");
    assert.equal(await getNewPassword(`${dir}/long`), "long enough");
  } finally {
    if (saved === undefined) Deno.env.delete("BDSNAP_PASSWORD_FILE");
    else Deno.env.set("BDSNAP_PASSWORD_FILE", saved);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("setup: sets, refuses short, replaces only with the old password", async () => {
  const dir = await Deno.makeTempDir();
  const env = {
    BDSNAP_CONFIG_DIR: `${dir}/etc`,
    BDSNAP_KDF_ITERATIONS: "1000",
    BDSNAP_PASSWORD_FILE: undefined,
  };
  const pw = (name: string, text: string) => {
    Deno.writeTextFileSync(`${dir}/${name}`, text + "\n");
    return `${dir}/${name}`;
  };
  const hashFile = `${dir}/etc/passwd.hash`;

  let r = await run(["setup", "--password-file", pw("short", "1234567")], env);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `bdsnap: the password is shorter than 8 characters (in ${dir}/short)\n`);
  await assert.rejects(() => Deno.stat(hashFile), Deno.errors.NotFound);

  r = await run(["--json", "setup", "--password-file", pw("first", "first password")], env);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), [
    "hash_file",
    "config_dir",
    "replaced",
    "module",
    "iterations",
  ]);
  assert.equal(out.hash_file, hashFile);
  assert.equal(out.replaced, false);
  assert.equal(out.iterations, 1000);
  assert.equal((await Deno.stat(hashFile)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${dir}/etc`)).mode! & 0o777, 0o700);
  const first = (await Deno.readTextFile(hashFile)).trim();
  assert.equal(parseHash(first).iterations, 1000);
  assert.ok(await verifyPassword("first password", first));

  // replacing: a wrong old password is refused with exit 3, nothing changes
  r = await run([
    "setup",
    "--password-file",
    pw("second", "second password"),
    "--old-password-file",
    pw("wrong", "not the password"),
  ], env);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^bdsnap: wrong password: the current password does not match/);
  assert.equal((await Deno.readTextFile(hashFile)).trim(), first);

  // the old password from BDSNAP_PASSWORD_FILE
  r = await run(["setup", "--password-file", `${dir}/second`], {
    ...env,
    BDSNAP_PASSWORD_FILE: pw("old", "first password"),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^password replaced; hash stored in /);
  assert.ok(await verifyPassword("second password", await Deno.readTextFile(hashFile)));

  // -q: nothing on stdout
  r = await run([
    "-q",
    "setup",
    "--password-file",
    `${dir}/first`,
    "--old-password-file",
    `${dir}/second`,
  ], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("setup: no terminal and no file is a usage error (never argv)", async () => {
  const dir = await Deno.makeTempDir();
  const r = await runChild(["setup"], { BDSNAP_CONFIG_DIR: dir, BDSNAP_KDF_ITERATIONS: "1000" });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^bdsnap: no password: not on a terminal, so give --password-file F/);
  await Deno.remove(dir, { recursive: true });
});
