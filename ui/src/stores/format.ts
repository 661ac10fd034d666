// Numbers as people read them: durations, sizes, counts and dates. Pure, so they are unit-tested.

/** "about 3 min 20 s left" style ETA; seconds can be fractional, unknown, or absurd early on. */
export function formatEta(secs: number | null | undefined): string {
  if (secs == null || !Number.isFinite(secs) || secs < 0) return 'estimating…';
  const s = Math.round(secs);
  if (s < 1) return 'almost done';
  if (s < 60) return `${s} s left`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    return r ? `${m} min ${r} s left` : `${m} min left`;
  }
  // Beyond an hour the seconds are noise; round to minutes.
  const totalMin = Math.round(s / 60);
  const h = Math.floor(totalMin / 60);
  const m = totalMin % 60;
  return m ? `${h} h ${m} min left` : `${h} h left`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** 950 → "950", 12_300 → "12.3k", 3_400_000 → "3.4M". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const abs = Math.abs(n);
  const short = (v: number, suffix: string) =>
    `${v < 10 ? v.toFixed(1).replace(/\.0$/, '') : Math.round(v)}${suffix}`;
  if (abs >= 1e9) return short(n / 1e9, 'B');
  if (abs >= 1e6) return short(n / 1e6, 'M');
  if (abs >= 1e4) return short(n / 1e3, 'k');
  return Math.round(n).toLocaleString('en-US');
}

export function formatLoss(loss: number | null | undefined): string {
  return loss == null || !Number.isFinite(loss) ? '—' : loss.toFixed(3);
}

/** Unix seconds → local date and time, e.g. "3 Mar 2025, 14:05". */
export function formatDate(unixSecs: number): string {
  if (!unixSecs) return '—';
  return new Date(unixSecs * 1000).toLocaleString(undefined, {
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
}
