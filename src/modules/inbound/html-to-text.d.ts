// The one function of html-to-text (mailparser's own HTML-to-text converter, pinned to its version)
// that mime.ts uses.
declare module 'html-to-text' {
  export function compile(options?: { limits?: { maxDepth?: number } }): (html: string) => string;
}
