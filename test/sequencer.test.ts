// The files test/sequencer.ts starts first exist: a renamed one would silently start late again.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { SLOW_FILES } from './sequencer.ts';

it.each(SLOW_FILES)('%s exists', (file) => {
  expect(existsSync(path.resolve(import.meta.dirname, '..', file))).toBe(true);
});
