import { describe, expect, it } from 'vitest';
import { usableLanguage } from './locale-guard';

describe('usableLanguage', () => {
  it('keeps a valid language tag', () => {
    expect(usableLanguage('de-DE')).toBe('de-DE');
  });
  it('replaces the POSIX "C" locale and empty values with en-US', () => {
    expect(usableLanguage('C')).toBe('en-US');
    expect(usableLanguage('C.UTF-8')).toBe('en-US');
    expect(usableLanguage(undefined)).toBe('en-US');
    expect(() => new Intl.NumberFormat(usableLanguage('C'))).not.toThrow();
  });
});
