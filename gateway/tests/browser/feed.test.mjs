// The live feed page at `/` of the service's in-process REST, in a real (headless) browser: the
// page is opened on replica A, an article is created through the REST API of replica B (another
// process on the same database), and it must appear on A's page within a second. Started by
// scripts/browser-test, which sets FEED_URL (replica A), WRITE_URL (replica B) and TOKEN.
// Needs Debian's Chromium at /usr/bin/chromium (or CHROMIUM).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';

const feed = process.env.FEED_URL;
const write = process.env.WRITE_URL;
const token = process.env.TOKEN;
const skip = feed && write && token ? false : 'FEED_URL, WRITE_URL and TOKEN are not set';

test('an article created on another replica appears on the live feed page within a second',
  { skip, timeout: 60_000 },
  async () => {
    const browser = await launch();
    try {
      const page = await browser.newPage();
      const external = [];
      page.on('request', (request) => {
        if (!request.url().startsWith(feed)) external.push(request.url());
      });
      await page.goto(new URL('/', feed).href);
      // Live: the EventSource is open.
      await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });

      const title = `Seen live ${Date.now()}`;
      const started = Date.now();
      const response = await fetch(new URL('/articles', write), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title, content: 'Written through replica B.' }),
      });
      assert.equal(response.status, 200, await response.clone().text());
      const created = (await response.json()).article;
      // Polled by the page itself, every animation frame: the time it took is the page's own.
      const seenAfter = await page.evaluate((want) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${want} not shown within 5 s`)), 5_000);
        const look = () => {
          const found = [...document.querySelectorAll('#feed li')]
            .find((li) => li.querySelector('.title')?.textContent === want);
          if (found) {
            clearTimeout(timer);
            resolve({ at: Date.now(), kind: found.querySelector('.kind').textContent,
              articleId: found.dataset.articleId });
          } else {
            requestAnimationFrame(look);
          }
        };
        look();
      }), title);
      const took = seenAfter.at - started;
      assert.ok(took < 1000, `took ${took} ms`);
      assert.equal(seenAfter.kind, 'CREATED');
      assert.equal(seenAfter.articleId, String(created.id));
      assert.deepEqual(external, [], 'the page loads nothing from elsewhere');
    } finally {
      await browser.close();
    }
  });
