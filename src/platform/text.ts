// Small helpers for the sentences of messages.

/** "an agent", "a viewer": the indefinite article by the word's first letter (enough for our role names). */
export const withArticle = (word: string): string => `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`;

/** The same at the start of a sentence: "An agent", "A viewer". */
export const withArticleCapital = (word: string): string => {
  const s = withArticle(word);
  return s[0]!.toUpperCase() + s.slice(1);
};
