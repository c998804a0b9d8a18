/**
 * The TypeScript mirrors of kmod/include/uapi/bdsnap.h (lib/format.ts for the
 * store format, ffi/uapi.ts for the control ABI) agree with the C header.
 *
 * The struct field names come from the header itself (a small parser of its
 * regular layout), a C probe generated from them is compiled with `cc` and
 * prints every sizeof, offsetof, ioctl number and constant as JSON, and the
 * test compares those with the mirrors. So a field added to the header but
 * not to a mirror fails too. Skipped, with a message, only when there is no
 * C compiler.
 */
import assert from "node:assert/strict";
import {
  MAP_F_FAILED,
  MAP_F_WRITE_AHEAD,
  MAP_HEADER_SIZE,
  MAP_MAGIC,
  MAP_RECORD_SIZE,
  MAP_STRUCTS,
  MAP_VERSION,
} from "../../lib/format.ts";

const HEADER = new URL("../../kmod/include/uapi/bdsnap.h", import.meta.url).pathname;

/** Struct name → field names in declaration order, from the header text. */
function parseStructs(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const noComments = text.replace(/\/\*[\s\S]*?\*\//g, "");
  for (const m of noComments.matchAll(/struct\s+(\w+)\s*\{([^}]*)\};/g)) {
    const fields = m[2].split(";").map((l) => l.trim()).filter((l) => l !== "")
      .map((l) => /(\w+)\s*(?:\[[^\]]*\])?$/.exec(l)![1]);
    out.set(m[1], fields);
  }
  return out;
}

/** `#define NAME …` names from the header, by prefix. */
function defines(text: string, re: RegExp): string[] {
  return [...text.matchAll(/^#define\s+(\w+)\s/gm)].map((m) => m[1]).filter((n) => re.test(n));
}

interface Probe {
  structs: Record<string, { size: number; fields: Record<string, number> }>;
  ioctls: Record<string, number>;
  constants: Record<string, number>;
  magic: string;
}

async function hasCc(): Promise<boolean> {
  try {
    const o = await new Deno.Command("cc", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return o.success;
  } catch {
    return false;
  }
}

/** What this test reads from ffi/uapi.ts. */
interface UapiMirror {
  STRUCTS: Record<string, { size: number; fields: Record<string, number> }>;
  IOCTL: Record<string, number>;
  ABI_VERSION: number;
  PASSWD_MAX: number;
  HASH_MAX: number;
  NAME_LEN: number;
  SESSION_ID_LEN: number;
  STORE_ROOT_LEN: number;
  IDENTITY_LEN: number;
  VERSION_F_PASSWORD_SET: number;
  DEV_F_DEACTIVATING: number;
  IOC_MAGIC: number;
  SESSION_STATE: Record<string, number>;
  DEVICE_KIND: Record<string, number>;
}

let probeCache: Probe | undefined;

async function probe(): Promise<Probe> {
  if (probeCache) return probeCache;
  const text = await Deno.readTextFile(HEADER);
  const structs = parseStructs(text);
  const ioctls = defines(text, /^BDSNAP_IOC_/).filter((n) => n !== "BDSNAP_IOC_MAGIC");
  const consts = [
    ...defines(text, /^BDSNAP_/).filter((n) =>
      !n.startsWith("BDSNAP_IOC_") && n !== "BDSNAP_MAP_MAGIC" && n !== "BDSNAP_CTL_NAME"
    ),
    "BDSNAP_IOC_MAGIC",
    "BDSNAP_SESSION_NONE",
    "BDSNAP_SESSION_OPEN",
    "BDSNAP_SESSION_FAILED",
    "BDSNAP_KIND_BLOCK",
    "BDSNAP_KIND_FILE",
  ].filter((n) => !/_H$/.test(n));
  const lines: string[] = [
    "#include <stdio.h>",
    "#include <stddef.h>",
    `#include "${HEADER}"`,
    "int main(void) {",
    '  printf("{\\"structs\\": {");',
  ];
  [...structs].forEach(([name, fields], i) => {
    const parts = fields.map((f) =>
      `  printf("%s\\"${f}\\": %zu", ${
        fields.indexOf(f) === 0 ? '""' : '", "'
      }, offsetof(struct ${name}, ${f}));`
    );
    lines.push(
      `  printf("%s\\"${name}\\": {\\"size\\": %zu, \\"fields\\": {", ${
        i === 0 ? '""' : '", "'
      }, sizeof(struct ${name}));`,
      ...parts,
      '  printf("}}");',
    );
  });
  lines.push('  printf("}, \\"ioctls\\": {");');
  ioctls.forEach((n, i) => {
    lines.push(
      `  printf("%s\\"${n.replace("BDSNAP_IOC_", "")}\\": %lu", ${
        i === 0 ? '""' : '", "'
      }, (unsigned long)${n});`,
    );
  });
  lines.push('  printf("}, \\"constants\\": {");');
  consts.forEach((n, i) => {
    lines.push(`  printf("%s\\"${n}\\": %lld", ${i === 0 ? '""' : '", "'}, (long long)(${n}));`);
  });
  lines.push(
    '  printf("}, \\"magic\\": \\"%s\\"}\\n", BDSNAP_MAP_MAGIC);',
    "  return 0;",
    "}",
  );
  const dir = await Deno.makeTempDir({ prefix: "bdsnap-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, lines.join("\n") + "\n");
    const cc = await new Deno.Command("cc", {
      args: ["-std=gnu11", "-Wall", "-Werror", "-o", `${dir}/probe`, `${dir}/probe.c`],
    }).output();
    assert.ok(cc.success, `cc failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const run = await new Deno.Command(`${dir}/probe`).output();
    assert.ok(run.success);
    probeCache = JSON.parse(new TextDecoder().decode(run.stdout)) as Probe;
    return probeCache;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const cc = await hasCc();
if (!cc) console.warn("uapi_layout_test: no C compiler (cc) found: layout tests SKIPPED");

Deno.test({
  name: "uapi layout: lib/format.ts matches struct bdsnap_map_header and bdsnap_map_record",
  ignore: !cc,
  fn: async () => {
    const p = await probe();
    for (const name of ["bdsnap_map_header", "bdsnap_map_record"] as const) {
      assert.deepEqual(p.structs[name], MAP_STRUCTS[name], name);
    }
    assert.equal(MAP_HEADER_SIZE, p.structs.bdsnap_map_header.size);
    assert.equal(MAP_RECORD_SIZE, p.structs.bdsnap_map_record.size);
    assert.equal(MAP_VERSION, p.constants.BDSNAP_MAP_VERSION);
    assert.equal(MAP_F_WRITE_AHEAD, p.constants.BDSNAP_MAP_F_WRITE_AHEAD);
    assert.equal(MAP_F_FAILED, p.constants.BDSNAP_MAP_F_FAILED);
    assert.equal(MAP_MAGIC, p.magic);
  },
});

Deno.test({
  name: "uapi layout: ffi/uapi.ts matches every control struct, ioctl number and constant",
  ignore: !cc,
  fn: async () => {
    const p = await probe();
    // Imported dynamically, by a computed specifier that the type checker
    // does not follow, so that the store-format test above runs even while
    // ffi/uapi.ts is missing; this one then fails, naming the file.
    const spec = new URL("../../ffi/uapi.ts", import.meta.url).href;
    let uapi: UapiMirror;
    try {
      uapi = await import(spec) as UapiMirror;
    } catch (e) {
      throw new Error(`ffi/uapi.ts is missing or does not load: ${e}`);
    }
    const control = Object.fromEntries(
      Object.entries(p.structs).filter(([n]) => !n.startsWith("bdsnap_map_")),
    );
    assert.deepEqual(uapi.STRUCTS, control);
    assert.deepEqual(uapi.IOCTL, p.ioctls);
    const c = p.constants;
    assert.equal(uapi.ABI_VERSION, c.BDSNAP_ABI_VERSION);
    assert.equal(uapi.PASSWD_MAX, c.BDSNAP_PASSWD_MAX);
    assert.equal(uapi.HASH_MAX, c.BDSNAP_HASH_MAX);
    assert.equal(uapi.NAME_LEN, c.BDSNAP_NAME_LEN);
    assert.equal(uapi.SESSION_ID_LEN, c.BDSNAP_SESSION_ID_LEN);
    assert.equal(uapi.STORE_ROOT_LEN, c.BDSNAP_STORE_ROOT_LEN);
    assert.equal(uapi.IDENTITY_LEN, c.BDSNAP_IDENTITY_LEN);
    assert.equal(uapi.VERSION_F_PASSWORD_SET, c.BDSNAP_VERSION_F_PASSWORD_SET);
    assert.equal(uapi.DEV_F_DEACTIVATING, c.BDSNAP_DEV_F_DEACTIVATING);
    assert.equal(uapi.IOC_MAGIC, c.BDSNAP_IOC_MAGIC);
    assert.deepEqual(uapi.SESSION_STATE, {
      NONE: c.BDSNAP_SESSION_NONE,
      OPEN: c.BDSNAP_SESSION_OPEN,
      FAILED: c.BDSNAP_SESSION_FAILED,
    });
    assert.deepEqual(uapi.DEVICE_KIND, { BLOCK: c.BDSNAP_KIND_BLOCK, FILE: c.BDSNAP_KIND_FILE });
  },
});

Deno.test("uapi layout: the header parser finds every struct", async () => {
  const structs = parseStructs(await Deno.readTextFile(HEADER));
  assert.deepEqual([...structs.keys()].sort(), [
    "bdsnap_device_info",
    "bdsnap_identity",
    "bdsnap_list",
    "bdsnap_map_header",
    "bdsnap_map_record",
    "bdsnap_passwd_change",
    "bdsnap_protect_mount",
    "bdsnap_status",
    "bdsnap_target",
    "bdsnap_version",
  ]);
  assert.deepEqual(structs.get("bdsnap_map_record"), [
    "dev_offset",
    "dat_offset",
    "length",
    "data_crc",
    "seq",
    "record_crc",
  ]);
});
