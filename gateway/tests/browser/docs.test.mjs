// Drives the gateway's Swagger UI in a real (headless) browser: opens /docs, expands
// `GET /articles`, runs it with "Try it out" / "Execute", and checks the live answer.
//
// Run against a running gateway (with its backend):
//   cd gateway/tests/browser && npm install && GATEWAY_URL=http://127.0.0.1:8080 npm test
// Needs Debian's Chromium at /usr/bin/chromium (or CHROMIUM=/path): playwright-core downloads
// no browser. Also fails if the page loads anything from another origin (Swagger UI is
// embedded in the gateway; nothing may come from a CDN).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';

const base = process.env.GATEWAY_URL;

test('Swagger UI runs GET /articles against the live gateway',
  { skip: base ? false : 'GATEWAY_URL is not set', timeout: 60_000 },
  async () => {
    const origin = new URL(base).origin;
    const browser = await launch();
    try {
      const page = await browser.newPage();
      const foreign = [];
      page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.protocol.startsWith('http') && url.origin !== origin) foreign.push(url.href);
      });
      const pageErrors = [];
      page.on('pageerror', (error) => pageErrors.push(String(error)));

      // `/docs` redirects to `/docs/`.
      const response = await page.goto(new URL('/docs', base).href);
      assert.equal(response?.status(), 200);

      const operation = page.locator('.opblock.opblock-get', {
        has: page.locator('.opblock-summary-path[data-path="/articles"]'),
      });
      await operation.locator('.opblock-summary').first().click();

      // tryItOutEnabled starts operations in "Try it out" mode; click it if it is not.
      const tryItOut = operation.getByRole('button', { name: 'Try it out' });
      if (await tryItOut.isVisible()) await tryItOut.click();
      await operation.getByRole('button', { name: 'Execute' }).click();

      const status = operation.locator('.live-responses-table tr.response .response-col_status').first();
      await status.waitFor({ timeout: 20_000 });
      assert.equal((await status.innerText()).trim(), '200');

      const body = await operation.locator('.live-responses-table tr.response .response-col_description')
        .first().innerText();
      assert.match(body, /"articles"\s*:/, `response body: ${body}`);
      assert.match(body, /"total"\s*:/, `response body: ${body}`);

      assert.deepEqual(foreign, [], 'requests to other origins');
      assert.deepEqual(pageErrors, [], 'uncaught page errors');
    } finally {
      await browser.close();
    }
  });

test('EventSource reads every article from /articles:export',
  { skip: base ? false : 'GATEWAY_URL is not set', timeout: 60_000 },
  async () => {
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await page.goto(new URL('/healthz', base).href);
      // The demo database of scripts/browser-test has 20 articles.
      const ids = await page.evaluate(() => new Promise((resolve, reject) => {
        const seen = [];
        const source = new EventSource('/articles:export');
        const timer = setTimeout(() => { source.close(); reject(new Error(`only ${seen}`)); }, 20_000);
        source.onmessage = (event) => {
          seen.push(JSON.parse(event.data).id);
          if (seen.length === 20) { clearTimeout(timer); source.close(); resolve(seen); }
        };
      }));
      assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i + 1));
    } finally {
      await browser.close();
    }
  });
