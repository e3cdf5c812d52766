import { describe, expect, it } from 'vitest';
import { withArticle, withArticleCapital } from './text.ts';

describe('withArticle', () => {
  it('takes "an" before a vowel and "a" before anything else, capitalised on request', () => {
    expect(['admin', 'agent', 'integration', 'viewer'].map(withArticle)).toEqual([
      'an admin',
      'an agent',
      'an integration',
      'a viewer',
    ]);
    expect(withArticleCapital('agent')).toBe('An agent');
    expect(withArticleCapital('viewer')).toBe('A viewer');
  });
});
