// Build the console into ONE file: ../src/traitor/ui/static/app.js
//   npm ci && npm run build        (node build.mjs --watch while developing)
// The licence texts of every bundled package are appended as a comment.
import * as esbuild from 'esbuild';
import { readFileSync, existsSync, readdirSync, appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, '..', 'src', 'traitor', 'ui', 'static', 'app.js');
const watch = process.argv.includes('--watch');

const options = {
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: !watch,
  sourcemap: watch ? 'inline' : false,
  legalComments: 'none',
  metafile: true,
  outfile,
  banner: { js: '/*! Traitor web console (sources and licences: ui-src/ in the Traitor repository). Bundles CodeMirror 6, Lezer, acorn and friends, MIT-licensed; their licences follow at the end of this file. */' },
};

function licences(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.set(m[1], join(here, 'node_modules', m[1]));
  }
  const parts = [];
  for (const [name, dir] of [...packages].sort()) {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const file = readdirSync(dir).find((f) => /^licen[sc]e/i.test(f));
    const text = file && existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8').trim() : `License: ${pkg.license}`;
    parts.push(`${name}@${pkg.version} (${pkg.license})\n\n${text}`);
  }
  return `\n/*! Third-party licences\n\n${parts.join('\n\n----------------------------------------\n\n').replaceAll('*/', '* /')}\n*/\n`;
}

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching; writing ${outfile}`);
} else {
  const result = await esbuild.build(options);
  appendFileSync(outfile, licences(result.metafile));
  const size = readFileSync(outfile).length;
  console.log(`wrote ${outfile} (${(size / 1024).toFixed(1)} KiB)`);
}
