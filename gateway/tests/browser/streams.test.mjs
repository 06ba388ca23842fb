// Follows streams from a real (headless) browser: EventSource on a server-streaming method and
// a WebSocket on a bidirectional one, through the gateway in front of the sensors test
// backend. Started by the gateway's Rust test `a_browser_follows_streams...`, which sets
// STREAMS_URL to that gateway. Needs Debian's Chromium at /usr/bin/chromium (or CHROMIUM).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';

const base = process.env.STREAMS_URL;

async function withPage(run) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(new URL('/healthz', base).href);
    return await run(page);
  } finally {
    await browser.close();
  }
}

test('EventSource follows a server stream and sees its error event',
  { skip: base ? false : 'STREAMS_URL is not set', timeout: 60_000 },
  async () => {
    const got = await withPage((page) => page.evaluate(() => new Promise((resolve, reject) => {
      const sequences = [];
      const source = new EventSource('/v1/sensors/failing/readings:watch?count=5');
      const timer = setTimeout(() => { source.close(); reject(new Error('timeout')); }, 20_000);
      source.onmessage = (event) => sequences.push(JSON.parse(event.data).sequence);
      source.addEventListener('error', (event) => {
        if (!event.data) return; // a reconnect notice, not the stream's own error event
        clearTimeout(timer);
        source.close();
        resolve({ sequences, error: JSON.parse(event.data) });
      });
    })));
    assert.deepEqual(got.sequences, ['1', '2']);
    assert.equal(got.error.code, 15);
    assert.equal(got.error.message, 'sensor lost');
  });

test('a WebSocket streams both ways and closes with the status',
  { skip: base ? false : 'STREAMS_URL is not set', timeout: 60_000 },
  async () => {
    const got = await withPage((page) => page.evaluate(() => new Promise((resolve, reject) => {
      const url = new URL('/v1/sensors:relay', location.href);
      url.protocol = 'ws:';
      const socket = new WebSocket(url);
      const echoes = [];
      const timer = setTimeout(() => reject(new Error('timeout')), 20_000);
      socket.onopen = () => socket.send(JSON.stringify({ sensor: 'a' }));
      socket.onmessage = (event) => {
        echoes.push(JSON.parse(event.data).sensor);
        // Each echo comes back before the next message is sent: a real bidi exchange.
        if (echoes.length === 1) socket.send(JSON.stringify({ sensor: 'b' }));
        else socket.send(''); // the half-close: no more requests
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        resolve({ echoes, code: event.code, reason: event.reason });
      };
    })));
    assert.deepEqual(got.echoes, ['a', 'b']);
    assert.equal(got.code, 1000);
    assert.equal(got.reason, 'OK');
  });
