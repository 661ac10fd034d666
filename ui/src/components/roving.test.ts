import { describe, expect, it } from 'vitest';
import { rovingTarget, tabStop } from './roving';

describe('rovingTarget', () => {
  it('arrows move to the neighbour and wrap round', () => {
    expect(rovingTarget('ArrowDown', 0, 3)).toBe(1);
    expect(rovingTarget('ArrowRight', 2, 3)).toBe(0);
    expect(rovingTarget('ArrowUp', 0, 3)).toBe(2);
    expect(rovingTarget('ArrowLeft', 1, 3)).toBe(0);
  });

  it('Home and End jump to the ends; other keys are not ours', () => {
    expect(rovingTarget('Home', 2, 5)).toBe(0);
    expect(rovingTarget('End', 0, 5)).toBe(4);
    expect(rovingTarget('Enter', 1, 5)).toBeNull();
    expect(rovingTarget('a', 1, 5)).toBeNull();
    expect(rovingTarget('ArrowDown', 0, 0)).toBeNull();
  });

  it('respects the orientation', () => {
    expect(rovingTarget('ArrowRight', 0, 3, 'vertical')).toBeNull();
    expect(rovingTarget('ArrowDown', 0, 3, 'horizontal')).toBeNull();
    expect(rovingTarget('ArrowDown', 0, 3, 'vertical')).toBe(1);
  });

  it('the chosen item holds the Tab stop, else the first', () => {
    expect(tabStop(2)).toBe(2);
    expect(tabStop(-1)).toBe(0);
  });
});
