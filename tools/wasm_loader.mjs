// Release builds (tools/stamp_build.sh runs this after tools/build_relaxed_simd.sh):
// makes the staged index.html load the relaxed-SIMD build of the app's wasm
// where the browser has relaxed SIMD, and Trunk's plain simd128 build
// everywhere else.
//
// Trunk writes two things for the wasm: a preload link and a module script
// whose `init({ module_or_path: '/NAME_bg.wasm' })` fetches it. Both are
// replaced: the preload by a small classic script, run as the page is parsed,
// that validates a 37-byte module holding one `f32x4.relaxed_madd`, picks the
// file, preloads it (with its integrity hash) and leaves
// `window.attnscopeWasm` = { url, plain, relaxed }; the init by
// `window.attnscopeInit(init)`, which loads the chosen file and, should the
// relaxed one fail to load or compile, the plain one. A test (or the curious)
// sets `window.attnscopePlainSimd = true` before the page runs to get the
// plain build in a browser that has relaxed SIMD.
//
// Usage: node tools/wasm_loader.mjs STAGE_DIR NAME
//   NAME: the glue's base name (attnscope-web-<hash>); STAGE_DIR holds
//   NAME_bg.wasm, and NAME_bg.relaxed-simd.wasm when that build was made.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [stage, name] = process.argv.slice(2);
if (!stage || !name) {
  console.error('usage: node tools/wasm_loader.mjs STAGE_DIR NAME');
  process.exit(2);
}
const fail = (msg) => {
  console.error(`wasm_loader: ${msg}`);
  process.exit(1);
};
const sri = (file) => 'sha384-' + createHash('sha384').update(readFileSync(file)).digest('base64');
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

const plainFile = `${name}_bg.wasm`;
const relaxedFile = `${name}_bg.relaxed-simd.wasm`;
const hasRelaxed = existsSync(join(stage, relaxedFile));
const htmlPath = join(stage, 'index.html');
let html = readFileSync(htmlPath, 'utf8');

// Exactly one match of each, or the build fails: a Trunk whose output looks
// different must not leave a page that silently loads neither file.
const replaceOnce = (re, what, by) => {
  const found = html.match(new RegExp(re.source, 'g')) || [];
  if (found.length !== 1) fail(`expected one ${what} in index.html, found ${found.length} (Trunk's output changed?)`);
  html = html.replace(re, by);
};

// `/NAME_bg.wasm` (Trunk's public URL is `/`), quoted or not, in the preload.
const base = '/';
const preload = new RegExp(`<link(?=[^>]*\\brel="?preload\\b)(?=[^>]*\\bhref="?${escape(base + plainFile)}"?[\\s>])[^>]*>`);
const initCall = new RegExp(`init\\(\\s*\\{\\s*module_or_path:\\s*(['"\`])${escape(base + plainFile)}\\1\\s*\\}\\s*\\)`);

// The feature test: (module (func (param v128 v128 v128) (result v128)
//   local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))
const probe = [0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11];
const files = { [base + plainFile]: sri(join(stage, plainFile)) };
if (hasRelaxed) files[base + relaxedFile] = sri(join(stage, relaxedFile));

const chooser = `<script>(()=>{` +
  `const P=${JSON.stringify(base + plainFile)},R=${hasRelaxed ? JSON.stringify(base + relaxedFile) : 'null'},I=${JSON.stringify(files)};` +
  `let r=!1;try{r=!!R&&!window.attnscopePlainSimd&&WebAssembly.validate(new Uint8Array(${JSON.stringify(probe)}))}catch(e){}` +
  `const w=window.attnscopeWasm={url:r?R:P,plain:P,relaxed:r};` +
  `const l=document.createElement('link');l.rel='preload';l.as='fetch';l.crossOrigin='';l.type='application/wasm';l.href=w.url;l.integrity=I[w.url];document.head.append(l);` +
  `window.attnscopeInit=(init)=>init({module_or_path:w.url}).catch((e)=>{if(!w.relaxed)throw e;` +
  `console.warn('attnscope: the relaxed-SIMD build did not load; loading the plain simd128 build',e);` +
  `w.url=P;w.relaxed=!1;return init({module_or_path:P})})` +
  `})()</script>`;

replaceOnce(preload, `preload link for ${plainFile}`, chooser);
replaceOnce(initCall, `init call for ${plainFile}`, 'window.attnscopeInit(init)');
writeFileSync(htmlPath, html);
console.log(`wasm_loader: index.html picks ${hasRelaxed ? `${relaxedFile} (relaxed SIMD) or ` : ''}${plainFile}`);
