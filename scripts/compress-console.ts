// After the console's Vite build: a brotli and a gzip copy beside each script and stylesheet of
// console/dist/assets, which the server sends to browsers that accept them (@fastify/static's
// preCompressed), so nothing is compressed again at each request.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const assets = path.resolve(import.meta.dirname, '../console/dist/assets');
let files = 0;
for (const name of await readdir(assets)) {
  if (!/\.(js|css|svg)$/.test(name)) continue;
  const file = path.join(assets, name);
  const bytes = await readFile(file);
  await writeFile(
    `${file}.br`,
    brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
  );
  await writeFile(`${file}.gz`, gzipSync(bytes, { level: 9 }));
  files++;
}
console.log(`compressed ${files} console assets (brotli and gzip)`);
