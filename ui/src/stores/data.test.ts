import { describe, expect, it } from 'vitest';
import { fileReport } from '../test/fixtures';
import { mergeReports, removeReport, splitTokens, totals, usablePaths } from './data';

const bad = fileReport({ path: '/d/x.pdf', name: 'x.pdf', extension: 'pdf', status: 'error', error: 'has extension `.pdf`; save it as plain text first', chars: 0, words: 0, tokensEstimate: 0 });

describe('file list', () => {
  it('re-adding a file replaces its report instead of duplicating it', () => {
    const a = fileReport();
    const merged = mergeReports([a, bad], [{ ...a, chars: 1 }]);
    expect(merged).toHaveLength(2);
    expect(merged.find((f) => f.path === a.path)?.chars).toBe(1);
  });

  it('only readable files are sent to training and counted', () => {
    const files = [fileReport(), bad, fileReport({ path: '/d/b.txt', chars: 1000, words: 200, tokensEstimate: 250, sizeBytes: 1000 })];
    expect(usablePaths(files)).toEqual(['/data/business-rules.md', '/d/b.txt']);
    expect(totals(files)).toEqual({ files: 3, usable: 2, failed: 1, bytes: 53_000, chars: 52_000, words: 8_600, tokens: 13_000 });
    expect(removeReport(files, '/d/x.pdf')).toHaveLength(2);
  });

  it('splits by the held-back fraction', () => {
    expect(splitTokens(10_000, 0.1)).toEqual({ train: 9000, val: 1000 });
  });
});
