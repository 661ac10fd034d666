// A scriptable fake of the Rust side for tests: command handlers by name, a log of every call,
// and a way to push events down a Channel exactly as Tauri does (indexed messages).
import { mockIPC } from '@tauri-apps/api/mocks';
import type { Channel } from '@tauri-apps/api/core';
import type { CommandError, Event } from '../ipc/types';

export type Handler = (args: Record<string, unknown>) => unknown;

export interface FakeBackend {
  calls: { cmd: string; args: Record<string, unknown> }[];
  /** Arguments of the last call to `cmd`. */
  last(cmd: string): Record<string, unknown> | undefined;
  handle(cmd: string, h: Handler): void;
}

export function fakeBackend(handlers: Record<string, Handler> = {}, options?: { events?: boolean }): FakeBackend {
  const table = new Map(Object.entries(handlers));
  const calls: FakeBackend['calls'] = [];
  mockIPC(
    (cmd, payload) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      calls.push({ cmd, args });
      const h = table.get(cmd);
      if (!h) return Promise.reject(reject('internal', `no fake for command ${cmd}`));
      return h(args);
    },
    { shouldMockEvents: options?.events ?? false },
  );
  return {
    calls,
    last: (cmd) => [...calls].reverse().find((c) => c.cmd === cmd)?.args,
    handle: (cmd, h) => void table.set(cmd, h),
  };
}

export function reject(kind: string, message: string): CommandError {
  return { kind, message };
}

/** Delivers events through the channel's real callback path, in order. */
export function send(channel: unknown, events: Event[]) {
  const ch = channel as Channel<Event> & { __next?: number };
  const internals = (window as unknown as { __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void } }).__TAURI_INTERNALS__;
  for (const message of events) {
    const index = ch.__next ?? 0;
    ch.__next = index + 1;
    internals.runCallback(ch.id, { index, message });
  }
}

/** A promise with its resolve/reject exposed, to hold a command open while a test streams. */
export function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks run. */
export const flush = () => new Promise((r) => setTimeout(r, 0));
