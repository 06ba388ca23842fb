// The gateway's live page at `/` (gateway/src/live.rs) and its panel on the Swagger UI page, in
// a real (headless) browser. Two setups, each test skipped without its own:
// - SENSORS_URL, a gateway in front of the sensors test backend (not the article API), set by
//   the gateway's Rust test `the_live_page_follows_a_chosen_stream_of_any_api_in_a_browser`;
// - GATEWAY_URL (articles-gateway in front of service replica A), WRITE_URL (the in-process
//   REST of replica B, on the same database) and TOKEN, set by scripts/browser-test: an article
//   written on one replica must show up on the page served in front of the other.
// - TALLY_URL, a zero-configuration gateway (reflection + auto-mapping) in front of the tally
//   test backend, an API with no annotation, set by the gateway's Rust test
//   `the_live_page_follows_an_auto_mapped_post_stream_with_its_json_body`;
// - SENSORS_DOWN_URL, a gateway in front of a sensors backend that is down until this test
//   creates the file RESTART_FILE, set by `the_live_page_keeps_watching_across_a_backend_restart`.
// Needs Debian's Chromium at /usr/bin/chromium (or CHROMIUM).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { launch } from './browser.mjs';

const sensors = process.env.SENSORS_URL;
const sensorsDown = process.env.SENSORS_DOWN_URL;
const tally = process.env.TALLY_URL;
const restartFile = process.env.RESTART_FILE;
const gateway = process.env.GATEWAY_URL;
const write = process.env.WRITE_URL;
const token = process.env.TOKEN;
const articles = gateway && write && token ? false : 'GATEWAY_URL, WRITE_URL and TOKEN are not set';

// Opens `path` of `base` in a fresh browser and runs `body(page, foreign)`; `foreign` collects
// every request the page makes to another origin (nothing may come from a CDN).
async function withPage(base, path, body) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const origin = new URL(base).origin;
    const foreign = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.protocol.startsWith('http') && url.origin !== origin) foreign.push(url.href);
    });
    const errors = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    const response = await page.goto(new URL(path, base).href);
    assert.equal(response?.status(), 200);
    await body(page);
    assert.deepEqual(foreign, [], 'requests to other origins');
    assert.deepEqual(errors, [], 'uncaught page errors');
  } finally {
    await browser.close();
  }
}

// The texts of the events the panel shows, newest first.
const shown = (page) => page.locator('#live-feed .live-events li').allInnerTexts();

// Creates an article through `base`'s REST API; answers it and when the request was sent.
async function createArticle(base, title) {
  const started = Date.now();
  const response = await fetch(new URL('/articles', base), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title, content: 'Written through another replica.' }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return { started, article: (await response.json()).article };
}

// Waits (polled by the page itself, every animation frame) for an event whose text has `want`;
// answers when the page saw it and the event's kind badge. Bounded: 10 s.
function seen(page, want) {
  return page.evaluate((want) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${want} not shown within 10 s`)), 10_000);
    const look = () => {
      const found = [...document.querySelectorAll('#live-feed .live-events li')]
        .find((li) => li.textContent.includes(want));
      if (found) {
        clearTimeout(timer);
        resolve({ at: Date.now(), kind: found.querySelector('.live-kind')?.textContent,
          eventId: found.dataset.eventId });
      } else {
        requestAnimationFrame(look);
      }
    };
    look();
  }), want);
}

test('the live page follows a chosen stream of the sensors API and resumes it by Last-Event-ID',
  { skip: sensors ? false : 'SENSORS_URL is not set', timeout: 60_000 },
  async () => {
    await withPage(sensors, '/', async (page) => {
      // Every server-streaming GET route is offered; the CSV download is not an event stream.
      const offered = await page.locator('#live-feed .live-route option').allInnerTexts();
      assert.deepEqual(offered, ['/v1/sensors/{sensor}/readings:watch',
        '/v1/sensors/{sensor}/events (resumable)']);
      // Both have a path variable: nothing is watched until one is chosen.
      assert.equal(await page.locator('#live-feed .live-status').getAttribute('data-state'), 'idle');

      await page.selectOption('#live-feed .live-route', { label: offered[1] });
      await page.fill('#live-feed .live-vars input[name="sensor"]', 'lobby');
      await page.fill('#live-feed .live-query', 'count=3');
      await page.click('#live-feed .live-watch');
      // Three events, the stream ends, EventSource reconnects with Last-Event-ID 3 and the
      // backend goes on from 4: ids never repeat.
      await page.waitForFunction(
        () => document.querySelectorAll('#live-feed .live-events li').length >= 4,
        null, { timeout: 30_000 }).catch(async (e) => {
        throw new Error(`${e.message}; status: ${await page.locator('#live-feed .live-status').innerText()}`);
      });
      const ids = await page.$$eval('#live-feed .live-events li', (items) =>
        items.map((li) => li.dataset.eventId).reverse());
      assert.deepEqual(ids.slice(0, 4), ['1', '2', '3', '4']);
      const texts = await shown(page);
      assert.match(texts.at(-1), /"sensor":"lobby"/);
      assert.equal(await page.locator('#live-feed').getAttribute('data-url'),
        '/v1/sensors/lobby/events?count=3');
    });
  });

test('the live page says why a stream named in its query is refused',
  { skip: sensors ? false : 'SENSORS_URL is not set', timeout: 60_000 },
  async () => {
    // `watch` picks the stream, the other parameters go to it: 5000 breaks the field's rule.
    await withPage(sensors, '/?watch=/v1/sensors/lobby/events&last_event_id=5000', async (page) => {
      await page.waitForSelector('#live-feed .live-status[data-state="error"]', { timeout: 10_000 });
      assert.equal(await page.locator('#live-feed').getAttribute('data-url'),
        '/v1/sensors/lobby/events?last_event_id=5000');
      assert.match(await page.locator('#live-feed .live-status').innerText(),
        /^not watching: .*last_event_id.*\(code 3, HTTP 400\)$/);
    });
  });

test('the live page follows an auto-mapped POST stream with the JSON body written in the form',
  { skip: tally ? false : 'TALLY_URL is not set', timeout: 60_000 },
  async () => {
    await withPage(tally, '/', async (page) => {
      // The only server stream of the API, routed by auto-mapping: a POST, so not opened at once.
      const offered = await page.locator('#live-feed .live-route option').allInnerTexts();
      assert.deepEqual(offered, ['POST /tally.v1.Tally/Count']);
      assert.equal(await page.locator('#live-feed .live-status').getAttribute('data-state'), 'idle');
      assert.equal(await page.locator('#live-feed .live-query').getAttribute('placeholder'),
        '{"counter":"","upto":""}');
      await page.fill('#live-feed .live-query', '{"counter": "lobby", "upto": 3}');
      await page.click('#live-feed .live-watch');
      await page.waitForFunction(
        () => document.querySelectorAll('#live-feed .live-events li').length >= 3,
        null, { timeout: 10_000 }).catch(async (e) => {
        throw new Error(`${e.message}; status: ${await page.locator('#live-feed .live-status').innerText()}`);
      });
      const texts = (await shown(page)).reverse();
      assert.equal(texts.length, 3);
      texts.forEach((text, i) => assert.match(text, new RegExp(`"counter":"lobby","total":"${i + 1}"`)));
      await page.waitForSelector('#live-feed .live-status[data-state="idle"]', { timeout: 10_000 });
      assert.equal(await page.locator('#live-feed .live-status').innerText(), 'the stream ended');
      // A body the gateway refuses: the page says why.
      await page.fill('#live-feed .live-query', '{"upto": "many"}');
      await page.click('#live-feed .live-watch');
      await page.waitForSelector('#live-feed .live-status[data-state="error"]', { timeout: 10_000 });
      assert.match(await page.locator('#live-feed .live-status').innerText(),
        /^not watching: invalid JSON body.*\(code 3, HTTP 400\)$/);
    });
  });

test('the live page keeps watching while no backend is up and resumes once one is',
  { skip: sensorsDown && restartFile ? false : 'SENSORS_DOWN_URL is not set', timeout: 60_000 },
  async () => {
    await withPage(sensorsDown, '/?watch=/v1/sensors/lobby/events&count=2', async (page) => {
      const status = page.locator('#live-feed .live-status');
      // No backend: the gateway tells EventSource to retry, and it does (a 503 would have
      // ended it for good: "not watching").
      await page.waitForFunction(() => /code 14\).*reconnecting/.test(
        document.querySelector('#live-feed .live-status').textContent), null, { timeout: 10_000 })
        .catch(async (e) => { throw new Error(`${e.message}; status: ${await status.innerText()}`); });
      await page.waitForTimeout(1_500);
      assert.doesNotMatch(await status.innerText(), /not watching/);
      // The backend comes up: the same EventSource gets the events, then (the stream of two
      // ended) reconnects with Last-Event-ID 2 and goes on from 3: nothing missed, none twice.
      writeFileSync(restartFile, 'up');
      await page.waitForFunction(
        () => document.querySelectorAll('#live-feed .live-events li').length >= 4,
        null, { timeout: 30_000 }).catch(async (e) => {
        throw new Error(`${e.message}; status: ${await status.innerText()}`);
      });
      const ids = await page.$$eval('#live-feed .live-events li', (items) =>
        items.map((li) => li.dataset.eventId).reverse());
      assert.deepEqual(ids.slice(0, 4), ['1', '2', '3', '4']);
    });
  });

test('an article created on another replica appears on the gateway\'s live page',
  { skip: articles, timeout: 60_000 },
  async () => {
    await withPage(gateway, '/', async (page) => {
      // The article feed is opened at once: the API's only resumable stream without variables.
      await page.waitForSelector('#live-feed .live-status[data-state="live"]', { timeout: 10_000 });
      assert.equal(await page.locator('#live-feed').getAttribute('data-url'), '/articles:watch');
      const title = `Seen live ${Date.now()}`;
      const { started, article } = await createArticle(write, title);
      const { at, kind } = await seen(page, title);
      console.log(`live page: created on replica B, shown through the gateway after ${at - started} ms`);
      assert.equal(kind, 'CREATED');
      assert.match((await shown(page)).find((t) => t.includes(title)), new RegExp(`"id":${article.id}\\b`));
    });
  });

test('the Swagger UI page shows the article feed in its live panel',
  { skip: articles, timeout: 60_000 },
  async () => {
    await withPage(gateway, '/docs/', async (page) => {
      await page.locator('.opblock-summary-path[data-path="/articles"]').first().waitFor({ timeout: 20_000 });
      // Closed at first (no stream per reader of the docs); opening it starts the feed.
      assert.equal(await page.locator('#live-feed .live-status').getAttribute('data-state'), 'idle');
      await page.click('#live-feed > summary');
      await page.waitForSelector('#live-feed .live-status[data-state="live"]', { timeout: 10_000 });
      const title = `Seen on the docs ${Date.now()}`;
      const { started } = await createArticle(write, title);
      const { at, kind } = await seen(page, title);
      console.log(`docs panel: created on replica B, shown after ${at - started} ms`);
      assert.equal(kind, 'CREATED');
    });
  });

test('the service\'s own REST opens the same page a few events back and follows the other replica',
  { skip: articles, timeout: 60_000 },
  async () => {
    await withPage(write, '/', async (page) => {
      await page.waitForSelector('#live-feed .live-status[data-state="live"]', { timeout: 10_000 });
      // `/` went to `/?last_event_id=N`, 20 (the service's BACKLOG) before the newest event.
      const start = Number(new URL(page.url()).searchParams.get('last_event_id'));
      assert.ok(start > 0, page.url());
      await page.waitForFunction(
        () => document.querySelectorAll('#live-feed .live-events li').length >= 20,
        null, { timeout: 10_000 });
      const ids = await page.$$eval('#live-feed .live-events li', (items) =>
        items.map((li) => Number(li.dataset.eventId)).reverse());
      assert.equal(ids[0], start + 1);
      assert.equal(ids.length, 20);
      const title = `Written through the gateway ${Date.now()}`;
      const { started } = await createArticle(gateway, title);
      const { at } = await seen(page, title);
      console.log(`service page: created through the gateway (replica A), shown on replica B after ${at - started} ms`);
    });
  });
