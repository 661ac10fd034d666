// Roving focus for composite widgets (WAI-ARIA tabs and radio groups): one item is in the Tab
// order, arrow keys move between the items (wrapping round), Home and End jump to the ends.

export type Orientation = 'horizontal' | 'vertical' | 'both';

/** The index a key moves to from `index` among `count` items, or null when the key is not ours. */
export function rovingTarget(key: string, index: number, count: number, orientation: Orientation = 'both'): number | null {
  if (count <= 0) return null;
  const horizontal = orientation !== 'vertical';
  const vertical = orientation !== 'horizontal';
  if ((key === 'ArrowRight' && horizontal) || (key === 'ArrowDown' && vertical)) return (index + 1) % count;
  if ((key === 'ArrowLeft' && horizontal) || (key === 'ArrowUp' && vertical)) return (index - 1 + count) % count;
  if (key === 'Home') return 0;
  if (key === 'End') return count - 1;
  return null;
}

/** The item that takes Tab focus: the chosen one, or the first when none is chosen. */
export function tabStop(chosen: number): number {
  return chosen >= 0 ? chosen : 0;
}
