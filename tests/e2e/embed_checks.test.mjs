// Property test (a small fuzzer) of www/embed.js's attribute checks, the
// `settings(attributes)` function, run in node's vm without a browser:
// random attribute names and values, random Unicode included (lone
// surrogates, RTL and combining marks, controls, long texts), and for every
// input: no throw, an ASCII fragment whose every field decodes, a height in
// range, and only known fields. Seeded, so a failure reproduces:
// EMBED_FUZZ_SEED=… EMBED_FUZZ_RUNS=… node --test tests/e2e/embed_checks.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { ROOT } from './harness.mjs';

const sandbox = {};
vm.createContext(sandbox);
vm.runInContext(readFileSync(path.join(ROOT, 'www/embed.js'), 'utf8'), sandbox);
const settings = sandbox.attnscopeEmbedSettings;

/** SplitMix32-ish: small, seeded, the same everywhere. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

const NAMES = ['text', 'text-b', 'view', 'layer', 'head', 'mask', 'height', 'theme', 'id', 'data-x', 'aria-label', 'onload', 'src', 'x'];
const SEEDS = ['weights', 'heads', 'diff', 'causal', 'window:3', 'bidirectional', '360', '4000', '119', '0', '4095', 'dark',
  ' 12 ', '1e3', '-1', '<script>', '%', '%E2', 'javascript:alert(1)'];
const PIECES = ['a', ' ', '&', '=', '#', '%', '"', '<', '\u0000', '\u001b', '\u202e', '\u0301', '\u05d0', '\ud800', '\udfff',
  '\ud83d\ude00', '\ufffe', '\uffff', '\u2028', '日本'];

function randomValue(r) {
  const pick = r();
  if (pick < 0.3) return SEEDS[Math.floor(r() * SEEDS.length)];
  const n = r() < 0.02 ? 4001 + Math.floor(r() * 3000) : Math.floor(r() * 24);
  let s = '';
  for (let i = 0; i < n; i++) {
    s += r() < 0.5 ? PIECES[Math.floor(r() * PIECES.length)] : String.fromCharCode(Math.floor(r() * 0x10000));
  }
  return s;
}

test('embed attribute checks: random attributes never throw and give a well-formed fragment', () => {
  const seed = Number(process.env.EMBED_FUZZ_SEED || 18);
  const runs = Number(process.env.EMBED_FUZZ_RUNS || 20000);
  const r = rng(seed);
  const t0 = Date.now();
  for (let run = 0; run < runs; run++) {
    const attributes = [];
    const count = Math.floor(r() * 5);
    for (let i = 0; i < count; i++) {
      const name = r() < 0.9 ? NAMES[Math.floor(r() * NAMES.length)] : randomValue(r);
      attributes.push([name, randomValue(r)]);
    }
    let out;
    try {
      out = settings(attributes);
    } catch (e) {
      assert.fail(`run ${run} (seed ${seed}) threw ${e} on ${JSON.stringify(attributes)}`);
    }
    const where = `run ${run} (seed ${seed}): ${JSON.stringify(attributes)}`;
    assert.match(out.fragment, /^[\x21-\x7e]*$/, `${where}: the fragment is printable ASCII`);
    const fields = out.fragment.split('&').map((f) => f.split('='));
    for (const [key, value] of fields) {
      assert.ok(['text', 'view', 'diff', 'layer', 'head', 'mask', 'theme'].includes(key), `${where}: field ${key}`);
      assert.doesNotThrow(() => decodeURIComponent(value), `${where}: ${key} decodes`);
    }
    assert.equal(fields[0][0], 'text');
    assert.ok(Number.isInteger(out.height) && out.height >= 120 && out.height <= 4000, `${where}: height ${out.height}`);
    assert.ok(out.problems.every((p) => typeof p === 'string'), where);
  }
  console.log(`embed checks: ${runs} inputs in ${Date.now() - t0} ms, seed ${seed}, 0 failures`);
});

test('view="diff" takes its second prompt from text-b, and says so when it is missing', () => {
  const out = settings([['view', 'diff'], ['text', 'The cat sat'], ['text-b', 'The dog sat'], ['layer', '1']]);
  assert.equal(out.fragment, 'text=The%20cat%20sat&view=diff&diff=The%20dog%20sat&layer=1');
  assert.equal(out.problems.length, 0);
  const missing = settings([['view', 'diff'], ['text', 'The cat sat']]);
  assert.doesNotMatch(missing.fragment, /diff=/);
  assert.equal(missing.problems.length, 1);
  assert.match(missing.problems[0], /text-b/);
  const lone = settings([['view', 'diff'], ['text-b', 'a\ud800b']]);
  assert.match(lone.fragment, /diff=a%EF%BF%BDb/);
  assert.match(lone.problems[0], /^text-b holds half of a UTF-16 surrogate pair at position 1/);
});
