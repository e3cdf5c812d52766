// The console's JavaScript as browsers download it: within the budget of 300 KB gzipped, all of it
// (every screen's chunk too), and nothing loaded from elsewhere.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ensureConsoleBuilt } from './browser.ts';

const DIST = path.resolve(import.meta.dirname, '../../console/dist');

describe('the console build', () => {
  it(
    'weighs at most 300 KB of gzipped JavaScript, and refers to no other origin',
    { timeout: 120_000 },
    () => {
      ensureConsoleBuilt();
      const assets = readdirSync(path.join(DIST, 'assets'));
      const scripts = assets.filter((f) => f.endsWith('.js'));
      expect(scripts.length).toBeGreaterThan(1);
      const gzipped = scripts.reduce(
        (sum, f) => sum + gzipSync(readFileSync(path.join(DIST, 'assets', f))).length,
        0,
      );
      expect(gzipped).toBeLessThanOrEqual(300 * 1024);
      const page = readFileSync(path.join(DIST, 'index.html'), 'utf8');
      expect(page).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(page).not.toMatch(/(src|href)="(https?:)?\/\//);
      for (const f of assets.filter((a) => a.endsWith('.css'))) {
        expect(readFileSync(path.join(DIST, 'assets', f), 'utf8')).not.toMatch(/url\((['"]?)(https?:)?\/\//);
      }
    },
  );
});
