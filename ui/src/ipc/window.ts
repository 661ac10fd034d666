// Window-level integrations: file drops, native file pickers and the close-while-training event.
// Each returns a no-op when not running inside Tauri (plain `vite dev` in a browser, unit tests),
// so views can call them unconditionally.
import { isTauri } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { getCurrentWebview } from '@tauri-apps/api/webview';
import { open } from '@tauri-apps/plugin-dialog';
import { testHooks } from './commands';

type Unlisten = () => void;

/** Files dragged onto the window: `hovering` drives the drop-zone highlight, `drop` gets paths. */
export async function onFileDrop(handlers: {
  hovering: (over: boolean) => void;
  drop: (paths: string[]) => void;
}): Promise<Unlisten> {
  if (!isTauri()) return () => {};
  // Test entry point: a WebDriver cannot make the OS drag files onto a window, so the end-to-end
  // test hands paths to the very handler a real drop calls (`window.__tunesmithDrop([...])`).
  // It exists only when the app was started by that test (TUNESMITH_E2E=1), never for a user.
  const hooks = window as unknown as { __tunesmithDrop?: (paths: string[]) => void };
  if (await testHooks().catch(() => false)) hooks.__tunesmithDrop = (paths) => handlers.drop(paths);
  const unlisten = await getCurrentWebview().onDragDropEvent(({ payload }) => {
    if (payload.type === 'enter' || payload.type === 'over') handlers.hovering(true);
    else if (payload.type === 'leave') handlers.hovering(false);
    else if (payload.type === 'drop') {
      handlers.hovering(false);
      handlers.drop(payload.paths);
    }
  });
  return () => {
    delete hooks.__tunesmithDrop;
    unlisten();
  };
}

/** The native "open files" dialog; an empty list when cancelled. */
export async function pickFiles(): Promise<string[]> {
  const picked = await open({ multiple: true, directory: false });
  if (!picked) return [];
  return Array.isArray(picked) ? picked : [picked];
}

/** The native file picker for one model file (.gguf); null when cancelled. */
export async function pickModelFile(): Promise<string | null> {
  const picked = await open({ multiple: false, directory: false, filters: [{ name: 'GGUF model', extensions: ['gguf'] }] });
  return typeof picked === 'string' ? picked : null;
}

/** The native file picker for one examples file (.jsonl); null when cancelled. */
export async function pickPairsFile(): Promise<string | null> {
  const picked = await open({ multiple: false, directory: false, filters: [{ name: 'Examples (JSON Lines)', extensions: ['jsonl', 'json'] }] });
  return typeof picked === 'string' ? picked : null;
}

/** The native folder picker; null when cancelled. */
export async function pickFolder(): Promise<string | null> {
  const picked = await open({ multiple: false, directory: true });
  return typeof picked === 'string' ? picked : null;
}

/** The backend emits `close-requested` (a rare global broadcast) when closing would stop training. */
export async function onCloseRequested(handler: () => void): Promise<Unlisten> {
  if (!isTauri()) return () => {};
  return listen('close-requested', () => handler());
}

/** The backend emits `closing` when a second close, with the question unanswered, stops the run,
 * saves a checkpoint and quits on its own. */
export async function onClosing(handler: () => void): Promise<Unlisten> {
  if (!isTauri()) return () => {};
  return listen('closing', () => handler());
}
