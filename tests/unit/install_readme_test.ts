/** The README's install commands as the install test reads them. */
import assert from "node:assert/strict";
import { installCommands } from "../harness/install_readme.ts";

const README = `# x

## Install on a server

\`\`\`sh
# On a build machine
npx -y deno@2.9.6 task package --out dist
# Copy dist/*.deb to the server; there, as root:
cd dist
apt-get install -y ./a.deb

bdsnap load
\`\`\`

Without DKMS:

\`\`\`sh
make -C kmod && make -C kmod install
\`\`\`

## Next

\`\`\`sh
not this
\`\`\`
`;

Deno.test("installCommands: build, server and manual commands of the section", () => {
  assert.deepEqual(installCommands(README), {
    build: ["npx -y deno@2.9.6 task package --out dist"],
    server: ["cd dist", "apt-get install -y ./a.deb", "bdsnap load"],
    manual: ["make -C kmod && make -C kmod install"],
  });
});

Deno.test("installCommands: the repository's README parses", async () => {
  const c = installCommands(await Deno.readTextFile(new URL("../../README.md", import.meta.url)));
  assert.deepEqual(c.server[0], "cd dist");
  assert.deepEqual(c.server.some((l) => l.includes("bdsnap-dkms_")), true);
});

Deno.test("installCommands: refuses a README without the section or the hand-over", () => {
  assert.throws(() => installCommands("# x\n"), /no '## Install on a server'/);
  assert.throws(
    () => installCommands(README.replace("# Copy dist/*.deb to the server; there, as root:", "")),
    /hands over/,
  );
  assert.throws(
    () => installCommands(README.replace("make -C kmod && make -C kmod install\n", "")),
    /without commands/,
  );
});
