// Turns whatever a rejected promise carries into the one error shape the UI shows. The backend
// always rejects with a CommandError; anything else (a bug, a missing backend in `vite dev`) is
// wrapped so the user still sees a sentence instead of "[object Object]".
import type { CommandError } from './types';

export function toCommandError(reason: unknown): CommandError {
  if (reason && typeof reason === 'object' && 'message' in reason) {
    const r = reason as { kind?: unknown; message: unknown };
    return {
      kind: typeof r.kind === 'string' ? r.kind : 'internal',
      message: String(r.message),
    };
  }
  if (typeof reason === 'string') return { kind: 'internal', message: reason };
  return { kind: 'internal', message: 'Something went wrong and no reason was given.' };
}

/** What to do next, by error kind; shown under the backend's own sentence. */
export function hintFor(kind: string): string | null {
  switch (kind) {
    case 'busy':
      return 'Another job is running. Wait for it to finish, or stop it on the Train page.';
    case 'hub':
      return 'You can still train a new model from scratch: it needs no download.';
    case 'file':
    case 'data':
      return 'Remove or fix the file named above, then try again.';
    case 'config':
      return 'Change the setting named above and try again.';
    case 'model':
      return 'Pick another model on the Model page.';
    case 'internal':
      return 'If this keeps happening, try a smaller model or batch size, or restart Tunesmith.';
    default:
      return null;
  }
}
