/** Helpers shared by the bench scripts. */
import fs from 'node:fs';

/** Result files (`*.md`, not hidden) in a done/ or failed/ directory; 0 if it is missing. */
export function countResults(dir: string): number {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.md') && !f.startsWith('.')).length;
  } catch {
    return 0;
  }
}

/** The last `lines` lines of a file, for showing a failed run's output. */
export function tailFile(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

/** Runs a bench's `main` and sets the exit code: its result, or 2 on a crash. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 2;
    },
  );
}

/** The `p`th percentile (0–100) of `values`, nearest rank; NaN for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** Prints a table to stdout: a header row, then `rows`, each column right-aligned to its widest cell. */
export function printTable(head: string[], rows: string[][]): void {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padStart(width[i]!)).join('  '));
}
