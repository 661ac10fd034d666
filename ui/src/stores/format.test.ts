import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount, formatEta, formatLoss } from './format';

describe('formatEta', () => {
  it.each([
    [null, 'estimating…'],
    [NaN, 'estimating…'],
    [Infinity, 'estimating…'],
    [-3, 'estimating…'],
    [0.2, 'almost done'],
    [45.4, '45 s left'],
    [60, '1 min left'],
    [125, '2 min 5 s left'],
    [3599.6, '1 h left'],
    [3600, '1 h left'],
    [3 * 3600 + 25 * 60 + 10, '3 h 25 min left'],
  ])('%s s → %s', (secs, text) => {
    expect(formatEta(secs as number | null)).toBe(text);
  });
});

describe('number formats', () => {
  it('bytes in decimal units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(52_000)).toBe('52 KB');
    expect(formatBytes(1_500_000)).toBe('1.5 MB');
    expect(formatBytes(3.5e9)).toBe('3.5 GB');
  });

  it('counts shorten above ten thousand', () => {
    expect(formatCount(950)).toBe('950');
    expect(formatCount(9_999)).toBe('9,999');
    expect(formatCount(12_300)).toBe('12k');
    expect(formatCount(3_400_000)).toBe('3.4M');
    expect(formatCount(124_000_000)).toBe('124M');
  });

  it('loss with three decimals, dash when unknown', () => {
    expect(formatLoss(3.14159)).toBe('3.142');
    expect(formatLoss(null)).toBe('—');
  });
});
