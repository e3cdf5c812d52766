// Run by Vitest before every test file (vitest.config.ts, setupFiles): the file's resources are
// closed after its last test (test/file-end.ts).
import { afterAll } from 'vitest';
import { closeFileResources } from './file-end.ts';

afterAll(closeFileResources);
