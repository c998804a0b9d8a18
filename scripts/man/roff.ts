/**
 * Just enough roff for a man(7) page: escaping and the few macros the
 * generator uses. Everything that reaches the page as text goes through
 * {@linkcode text}, so a help string can never inject a request.
 * @module
 */

/** Escape text for a roff text line (not for a request's arguments). */
export function text(s: string): string {
  const t = s
    .replaceAll("\\", "\\e")
    // man pages spell options with \- so they copy and search as ASCII minus
    .replaceAll("-", "\\-")
    // groff reads ASCII unless preconv runs first: name anything else
    .replace(
      /[^\t -~]/gu,
      (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`,
    );
  // A line that starts with . or ' would be read as a request.
  return /^[.']/.test(t) ? `\\&${t}` : t;
}

/** Bold. */
export function bold(s: string): string {
  return `\\fB${text(s)}\\fR`;
}

/** Italic (arguments, placeholders). */
export function italic(s: string): string {
  return `\\fI${text(s)}\\fR`;
}

/** An option's flags, `-q, --quiet` or `--module <file>`, with its value in italics. */
export function flags(s: string): string {
  return s.split(/(<[^>]+>|\[[^\]]+\])/).map((part) => {
    const m = /^<(.+)>$/.exec(part) ?? /^\[(.+)\]$/.exec(part);
    if (!m) return part === "" ? "" : bold(part);
    return part.startsWith("[") ? `[${italic(m[1])}]` : italic(m[1]);
  }).join("");
}

/** A quoted macro argument (for .TH and .SS). */
export function arg(s: string): string {
  return `"${text(s).replaceAll('"', "\\(dq")}"`;
}

/**
 * Paragraphs of help text: blank lines separate them; a paragraph whose
 * lines are laid out by hand (indented, or aligned with runs of spaces)
 * is kept as it is, the others are filled.
 */
export function paragraphs(s: string): string[] {
  const out: string[] = [];
  for (const para of s.trim().split(/\n\s*\n/)) {
    const lines = para.split("\n");
    const laidOut = lines.length > 1 && lines.some((l) => /^\s|\S {2,}\S/.test(l));
    out.push(".PP");
    if (laidOut) out.push(".nf", ...lines.map(text), ".fi");
    else out.push(...lines.map((l) => text(l.trim())));
  }
  return out;
}

/** A tagged paragraph: the term on its own line, the body indented below. */
export function tagged(term: string, body: string): string[] {
  return [".TP", term, ...body.split("\n").map((l) => text(l.trim()))];
}
