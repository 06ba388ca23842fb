// Uploads a file from Swagger UI in a real (headless) browser: the form body the gateway
// documents for a method whose body is a file (`multipart/form-data`, the file part
// `format: binary`) shows a file picker, and "Execute" sends the picked file, which the
// backend receives with its content type. Started by the gateway's Rust test
// `swagger_ui_uploads_a_file...`, which sets UPLOADS_URL to a gateway in front of the sensors
// test backend. Needs Debian's Chromium at /usr/bin/chromium (or CHROMIUM).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';

const base = process.env.UPLOADS_URL;

test('Swagger UI uploads a picked file as multipart/form-data',
  { skip: base ? false : 'UPLOADS_URL is not set', timeout: 60_000 },
  async () => {
    const browser = await launch();
    try {
      const page = await browser.newPage();
      const pageErrors = [];
      page.on('pageerror', (error) => pageErrors.push(String(error)));
      const response = await page.goto(new URL('/docs', base).href);
      assert.equal(response?.status(), 200);

      const operation = page.locator('.opblock.opblock-put', {
        has: page.locator('.opblock-summary-path[data-path="/v1/sensors/{sensor}/firmware"]'),
      });
      await operation.locator('.opblock-summary').first().click();
      const tryItOut = operation.getByRole('button', { name: 'Try it out' });
      if (await tryItOut.isVisible()) await tryItOut.click();

      await operation.locator('tr[data-param-name="sensor"] input').fill('s9');
      await operation.locator('.opblock-section-request-body select').selectOption('multipart/form-data');
      const picker = operation.locator('input[type="file"]');
      await picker.waitFor({ timeout: 10_000 });
      await picker.setInputFiles({
        name: 'firmware.bin',
        mimeType: 'application/x-firmware',
        buffer: Buffer.from([0, 1, 2, 255, 123, 10, 13]),
      });
      await operation.getByRole('button', { name: 'Execute' }).click();

      const status = operation.locator('.live-responses-table tr.response .response-col_status').first();
      await status.waitFor({ timeout: 20_000 });
      const body = await operation.locator('.live-responses-table tr.response .response-col_description')
        .first().innerText();
      assert.equal((await status.innerText()).trim(), '200', `response body: ${body}`);
      assert.match(body, /"count"\s*:\s*7/, `response body: ${body}`);
      assert.match(body, /"application\/x-firmware"/, `response body: ${body}`);
      assert.match(body, /"s9"/, `response body: ${body}`);
      assert.deepEqual(pageErrors, [], 'uncaught page errors');
    } finally {
      await browser.close();
    }
  });
