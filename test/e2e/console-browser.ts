import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, Page, Route } from 'playwright-core';
import { ROOT } from './harness.ts';

// What the console's browser tests share: where screenshots go, the axe-core check (light and
// dark mode) and signing in through the relay's dev login form.

export const CONSOLE_OUT = join(ROOT, 'test-output/console');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** A full-page screenshot into test-output/console/<name>.png. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(CONSOLE_OUT, `${name}.png`), fullPage: true });
}

/** axe-core in the page: no serious or critical violation, in light and in dark mode (a dark screenshot beside the light one). */
export async function axe(page: Page, what: string): Promise<void> {
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme });
    // Injected over the DevTools protocol: the page's own CSP allows no inline script.
    await page.evaluate(AXE);
    const { violations, passed } = await page.evaluate(async () => {
      const r = await (globalThis as unknown as { axe: { run(c: Document, o: object): Promise<{ passes: unknown[]; violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe.run(document, { resultTypes: ['violations'] });
      return { passed: r.passes.length, violations: r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`) };
    });
    assert.ok(passed > 10, `axe ran its rules on ${what} (${passed} passed)`);
    assert.deepEqual(violations, [], `axe on ${what} (${colorScheme})`);
    if (colorScheme === 'dark') await shot(page, `${what.toLowerCase()}-dark`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/** On the relay's sign-in page (where the console sent the browser): signs in with the dev login. */
export async function devLogin(page: Page, email: string): Promise<void> {
  await page.fill('form[data-dev-login] input[name=email]', email);
  await page.click('form[data-dev-login] button');
}

/** Runs `fn` with a page of a separate browser context signed in as `email` at `url` (a path of the console), then closes it. */
export async function asUser(browser: Browser, url: string, email: string, fn: (page: Page) => Promise<void>): Promise<void> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 375, height: 800 } });
  try {
    const page = await ctx.newPage();
    await page.goto(url);
    await devLogin(page, email);
    await fn(page);
  } finally {
    await ctx.close();
  }
}

export interface HeldRequest {
  url: URL;
  /** Sends the request on to the relay (its real answer reaches the page then). */
  go(): void;
}

/**
 * Holds the page's requests whose URL `match`es until the test lets each go: a real request to
 * the real relay, only later (to read what the page shows while an answer is on its way).
 * `next()` waits for the next such request.
 */
export function holdRequests(page: Page, match: (u: URL) => boolean): { next(timeoutMs?: number): Promise<HeldRequest>; stop(): Promise<void> } {
  const queue: HeldRequest[] = [];
  const waiting: ((h: HeldRequest) => void)[] = [];
  const handler = async (route: Route): Promise<void> => {
    let go!: () => void;
    const released = new Promise<void>((r) => (go = r));
    const h: HeldRequest = { url: new URL(route.request().url()), go };
    const w = waiting.shift();
    if (w) w(h);
    else queue.push(h);
    await released;
    await route.continue();
  };
  const matcher = (u: URL): boolean => match(u);
  const routed = page.route(matcher, handler);
  return {
    async next(timeoutMs = 10_000) {
      await routed;
      const h = queue.shift();
      if (h) return h;
      return await new Promise<HeldRequest>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no request to hold within ${timeoutMs} ms`)), timeoutMs);
        waiting.push((x) => {
          clearTimeout(t);
          resolve(x);
        });
      });
    },
    async stop() {
      await routed;
      for (const h of queue.splice(0)) h.go();
      await page.unroute(matcher, handler);
    },
  };
}
