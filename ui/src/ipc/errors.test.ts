import { describe, expect, it } from 'vitest';
import { hintFor, toCommandError } from './errors';

describe('toCommandError', () => {
  it('passes a CommandError through', () => {
    expect(toCommandError({ kind: 'hub', message: 'Could not download `gpt2`' })).toEqual({ kind: 'hub', message: 'Could not download `gpt2`' });
  });

  it('wraps strings, Errors and nothing at all so there is always a sentence', () => {
    expect(toCommandError('boom')).toEqual({ kind: 'internal', message: 'boom' });
    expect(toCommandError(new Error('bad'))).toEqual({ kind: 'internal', message: 'bad' });
    expect(toCommandError(undefined).message).toMatch(/went wrong/);
  });

  it('suggests what to do next by kind', () => {
    expect(hintFor('busy')).toMatch(/Another job/);
    expect(hintFor('hub')).toMatch(/from scratch/);
    expect(hintFor('cancelled')).toBeNull();
  });
});
