/**
 * Plain text tables: a header row, columns separated by two spaces, numbers
 * and sizes right-aligned.
 * @module
 */

/** A column: its heading and whether to right-align it. */
export interface Column {
  title: string;
  align?: "left" | "right";
}

/** Lay out rows under column headings; returns the lines without trailing spaces. */
export function formatTable(columns: Column[], rows: string[][]): string[] {
  const widths = columns.map((c, i) =>
    Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, i) => {
      const w = widths[i];
      return columns[i].align === "right" ? cell.padStart(w) : cell.padEnd(w);
    }).join("  ").trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map((r) => line(r.map((c) => c ?? "")))];
}
