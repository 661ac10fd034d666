// Which page is showing. Pages are few and flat, so a plain state value beats a router.
export type Page = 'data' | 'model' | 'train' | 'chat' | 'evaluate' | 'runs';

export const nav = $state<{ page: Page }>({ page: 'data' });

export function go(page: Page) {
  nav.page = page;
}
