// Imported first, before any module that formats numbers at load time (uPlot builds an
// Intl.NumberFormat from navigator.language as it loads). WebKitGTK reports the POSIX locale
// "C" when LANG is unset or C, which Intl rejects with a RangeError and the page stays blank.
export function usableLanguage(lang: string | undefined): string {
  try {
    if (lang && Intl.NumberFormat.supportedLocalesOf([lang]).length > 0) return lang;
  } catch {
    // invalid tag such as "C" or "C.UTF-8"
  }
  return 'en-US';
}

if (typeof navigator !== 'undefined') {
  const lang = usableLanguage(navigator.language);
  if (lang !== navigator.language) {
    Object.defineProperty(navigator, 'language', { get: () => lang, configurable: true });
    Object.defineProperty(navigator, 'languages', { get: () => [lang], configurable: true });
  }
}
