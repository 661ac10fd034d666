// The Data page's file list: merging newly inspected files, and the totals the model will see.
import type { FileReport } from '../ipc/types';

/** Adds reports, replacing any earlier report for the same path (re-adding a fixed file updates it). */
export function mergeReports(existing: FileReport[], incoming: FileReport[]): FileReport[] {
  const byPath = new Map(existing.map((f) => [f.path, f]));
  for (const f of incoming) byPath.set(f.path, f);
  return [...byPath.values()];
}

export function removeReport(files: FileReport[], path: string): FileReport[] {
  return files.filter((f) => f.path !== path);
}

/** Only readable files are sent to training; the others stay listed with their error. */
export function usablePaths(files: FileReport[]): string[] {
  return files.filter((f) => f.status === 'ok').map((f) => f.path);
}

export interface DataTotals {
  files: number;
  usable: number;
  failed: number;
  bytes: number;
  chars: number;
  words: number;
  tokens: number;
}

export function totals(files: FileReport[]): DataTotals {
  const ok = files.filter((f) => f.status === 'ok');
  const sum = (k: 'sizeBytes' | 'chars' | 'words' | 'tokensEstimate') => ok.reduce((a, f) => a + f[k], 0);
  return {
    files: files.length,
    usable: ok.length,
    failed: files.length - ok.length,
    bytes: sum('sizeBytes'),
    chars: sum('chars'),
    words: sum('words'),
    tokens: sum('tokensEstimate'),
  };
}

/** Split sizes for the validation slider's explanation. */
export function splitTokens(tokens: number, valFrac: number): { train: number; val: number } {
  const val = Math.round(tokens * valFrac);
  return { train: tokens - val, val };
}
