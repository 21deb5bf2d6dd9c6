// Accessibility helpers for the browser tests: axe-core injected into a page,
// every panel opened the way a learner would open it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe-core on the page; resolves to its violations, each { id, impact, help, nodes: [target…] }. */
export async function audit(page, context = 'html') {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ content: AXE_SOURCE });
  const result = await page.evaluate(async (ctx) => {
    const r = await window.axe.run(ctx, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  }, context);
  return result;
}

/** The violations axe rates serious or critical: the ones the tests fail on. */
export const serious = (violations) => violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');

/** A readable list for an assertion message. */
export function describe(violations) {
  return violations.map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.slice(0, 6).map((n) => n.target).join(' | ')}`
    + (v.nodes.length > 6 ? ` … ${v.nodes.length} in all` : '')).join('\n');
}

/** Opens what the learner's page keeps closed until asked: the tokenizers, a cost measurement, the dilution run, a generation. */
export async function openEveryPanel(page) {
  const clickIf = async (selector) => {
    const el = page.locator(selector).first();
    if (await el.count() && await el.isEnabled()) await el.click();
  };
  // Which heads matter: a painted pattern, the lens, an ablated head, a sweep and a diff (first, so the
  // generation below is as far along when the audit runs as it was before them).
  await clickIf('.finder-template[data-template=painted]');
  if (await page.locator('#diff-b').count()) await page.locator('#diff-b').fill('The dog sat on the mat.');
  for (const panel of ['.finder-panel', '.lens-panel', '.ablation-panel', '.diff-panel']) {
    if (await page.locator(panel).count()) await page.locator(panel).scrollIntoViewIfNeeded();
  }
  await clickIf('.ablate-head');
  await clickIf('.sweep-button');
  await clickIf('.fert-load');
  await page.waitForSelector('.fert-cell', { timeout: 60_000 });
  await clickIf('.measure-button');
  await clickIf('.dilution-run');
  await clickIf('.gen-ten');
  await clickIf('.gen-compare-button');
  await page.waitForTimeout(1500);
}
