/**
 * The keys of meta.json that the module writes (`bdsnap_meta_render` in
 * kmod/meta.c) are the keys lib/format.ts knows ({@linkcode META_KEYS}:
 * the required ones, the optional ones and `durability`). A key added on
 * one side only fails here: a new C key the reader would silently ignore, or
 * a TS key no module writes.
 *
 * The keys are read from the C text itself: inside the function's body, every
 * string-literal `\"key\":`.
 */
import assert from "node:assert/strict";
import { META_KEYS } from "../../lib/format.ts";

const META_C = new URL("../../kmod/meta.c", import.meta.url).pathname;

/** The body of `bdsnap_meta_render` in meta.c's text, from its `{` to its closing `}`. */
function renderBody(text: string): string {
  const start = /^int bdsnap_meta_render\([^)]*\)\s*\{/m.exec(text);
  assert.ok(start, "bdsnap_meta_render's definition not found in meta.c");
  const from = start.index + start[0].length;
  // The kernel style closes a function with a `}` alone at the start of a line.
  const end = text.indexOf("\n}\n", from);
  assert.ok(end > from, "the end of bdsnap_meta_render not found in meta.c");
  return text.slice(from, end);
}

/** The JSON keys `bdsnap_meta_render` writes, in the order it writes them. */
export function metaRenderKeys(sessionC: string): string[] {
  const body = renderBody(sessionC).replace(/\/\*[\s\S]*?\*\//g, "");
  // In the C source a key is the literal text  \"name\":  inside a string.
  return [...body.matchAll(/\\"([A-Za-z0-9_]+)\\":/g)].map((m) => m[1]);
}

Deno.test("meta.json keys: kmod/meta.c writes exactly the keys lib/format.ts reads", async () => {
  const keys = metaRenderKeys(await Deno.readTextFile(META_C));
  assert.ok(keys.length >= 10, `too few keys found, the parser is out of date: ${keys}`);
  assert.deepEqual(
    keys.filter((k, i) => keys.indexOf(k) !== i),
    [],
    "a key written twice",
  );
  const c = new Set(keys);
  const ts = new Set(META_KEYS);
  assert.deepEqual(
    {
      onlyInC: keys.filter((k) => !ts.has(k)),
      onlyInTs: META_KEYS.filter((k) => !c.has(k)),
    },
    { onlyInC: [], onlyInTs: [] },
  );
});

Deno.test("meta.json keys: the parser reads keys from string literals only", () => {
  const text = [
    "static int other(void)",
    "{",
    '\tjson_raw(&j, "{\\"not_this\\":1}");',
    "}",
    "",
    "int bdsnap_meta_render(struct bdsnap_session *s, char *buf, size_t size)",
    "{",
    '\t/* \\"commented\\": no */',
    '\tjson_raw(&j, "{\\"format\\":1,\\"id\\":");',
    '\tjson_raw(&j, ",\\"size\\":%llu,\\"bytes\\":%llu}", a, b);',
    "\treturn 0;",
    "}",
    "",
    'static const char *after = "\\"nor_this\\":";',
  ].join("\n");
  assert.deepEqual(metaRenderKeys(text), ["format", "id", "size", "bytes"]);
});
