/**
 * The parts of bdsnap(8) that are not in the command tree. Exit codes and
 * environment variables come from docs/CLI.md's tables, so the page and the
 * reference cannot disagree; the rest is short prose about the installed
 * system (files, Secure Boot) that docs/INSTALL.md explains at length.
 * @module
 */

import { bold, italic, paragraphs, tagged, text } from "./roff.ts";

/** The rows of the first table under `## heading` in a Markdown file, header excluded. */
export function markdownTable(md: string, heading: string): string[][] {
  const start = md.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`no "## ${heading}" section`);
  const rows: string[][] = [];
  for (const line of md.slice(start).split("\n").slice(2)) {
    if (line.startsWith("## ")) break;
    if (!line.startsWith("|")) {
      if (rows.length) break;
      continue;
    }
    rows.push(line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
  }
  // rows[0] is the header, rows[1] the |---| line
  return rows.slice(2);
}

/** Markdown inline markup as plain text: code spans, links, escaped pipes. */
export function plain(md: string): string {
  return md
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/`([^`]*)`/g, "$1")
    .replaceAll("\\|", "|");
}

/** EXIT STATUS and ENVIRONMENT from docs/CLI.md. */
export function referenceSections(cliMd: string): string[] {
  const out = ['.SH "EXIT STATUS"'];
  for (const [code, meaning] of markdownTable(cliMd, "Exit codes")) {
    out.push(...tagged(bold(code), plain(meaning)));
  }
  out.push(".SH ENVIRONMENT");
  for (const [name, meaning] of markdownTable(cliMd, "Environment")) {
    out.push(...tagged(bold(plain(name)), plain(meaning)));
  }
  return out;
}

const FILES: ReadonlyArray<[string, string]> = [
  ["/etc/bdsnap/", "configuration, mode 0700; removed by purging the package"],
  ["/etc/bdsnap/passwd.hash", "the service password's hash, written by setup (mode 0600)"],
  [
    "/etc/bdsnap/bdsnap.json",
    "the persistent configuration: the store root, the devices activate --persistent " +
    "recorded, module parameters, retention",
  ],
  ["/etc/bdsnap/password", "the password bdsnap-start.service activates with (mode 0600)"],
  [
    "/snapshot/",
    "the default store root: one directory per session. Removing or purging the " +
    "packages never touches it",
  ],
  ["/dev/bdsnap", "the module's control device (root only)"],
  [
    "/lib/modules/RELEASE/updates/dkms/bdsnap.ko",
    "the module as DKMS installs it; make -C kmod install puts it in updates/",
  ],
  ["/usr/lib/bdsnap/", "the packaged program: its Deno runtime, sources and dependencies"],
  ["/var/cache/bdsnap/deno/", "Deno's compile cache for the packaged program; safe to delete"],
  ["/var/lib/dkms/mok.key, /var/lib/dkms/mok.pub", "the key DKMS signs modules with"],
];

/** FILES, SECURE BOOT and SEE ALSO. */
export function systemSections(): string[] {
  const out = [".SH FILES"];
  for (const [path, what] of FILES) out.push(...tagged(italic(path), what));
  out.push(
    '.SH "SECURE BOOT"',
    ...paragraphs(
      "With Secure Boot the kernel is in lockdown and loads only modules signed with a key " +
        "it trusts, and load fails with EPERM or EKEYREJECTED. DKMS signs the modules it " +
        "builds with /var/lib/dkms/mok.key (made on first use); the kernel trusts it once " +
        "its certificate is enrolled as a Machine Owner Key:",
    ),
    ".PP",
    ".RS",
    ".nf",
    text("mokutil --import /var/lib/dkms/mok.pub"),
    text("reboot"),
    ".fi",
    ".RE",
    ...paragraphs(
      "mokutil asks for a one-time password; at the next boot the firmware's MOK manager " +
        "asks for it again (Enroll MOK, Continue, Yes). mokutil --test-key " +
        "/var/lib/dkms/mok.pub then says it is enrolled. A module installed with " +
        "make -C kmod install is signed by hand before installing:",
    ),
    ".PP",
    ".RS",
    ".nf",
    text("make -C kmod"),
    text(
      "/lib/modules/$(uname -r)/build/scripts/sign-file sha256 /var/lib/dkms/mok.key " +
        "/var/lib/dkms/mok.pub kmod/bdsnap.ko",
    ),
    text("make -C kmod install"),
    ".fi",
    ".RE",
    ...paragraphs(
      "(kmodsign sha512 with the same key and certificate on Ubuntu). " +
        "/usr/share/doc/bdsnap/INSTALL.md has the details.",
    ),
    '.SH "SEE ALSO"',
    `${bold("dkms")}(8), ${bold("mokutil")}(1), ${bold("modinfo")}(8), ` +
      `${bold("systemctl")}(1), ${bold("journalctl")}(1)`,
    ".PP",
    text("/usr/share/doc/bdsnap/: README.md, INSTALL.md and CLI.md (every command, its JSON)."),
  );
  return out;
}
