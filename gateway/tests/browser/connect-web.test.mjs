// The Connect protocol from a real browser: connect-web's Connect transport in headless
// Chromium, on a page of another origin (a static server here, serving the npm packages as ES
// modules through an import map, no bundler), so every call is a cross-origin fetch with its
// CORS preflight, as a web app's would be. Unary calls in JSON and binary, GET, a server
// stream, errors with details, deadlines; on the sensors test API and on the article API.
// (Browsers cannot stream a request body: client and bidirectional streams are connect-node's,
// in connect.test.mjs.) Started by the gateway's Rust test
// `connect_clients_from_node_and_chromium_...` (SENSORS_CONNECT_URL, SENSORS_DESCRIPTOR_SET)
// and by the service's `connect_from_node_and_chromium_reaches_the_service_...`
// (ARTICLES_CONNECT_URL, ARTICLES_DESCRIPTOR_SET).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { launch } from './browser.mjs';

const sensors = process.env.SENSORS_CONNECT_URL;
const articles = process.env.ARTICLES_CONNECT_URL;
const modules = join(import.meta.dirname, 'node_modules');

// Each package's ES module entry points, from its package.json `exports`.
function importMap() {
  const imports = {};
  for (const name of ['@bufbuild/protobuf', '@connectrpc/connect', '@connectrpc/connect-web']) {
    const { exports } = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8'));
    for (const [key, target] of Object.entries(exports)) {
      const file = typeof target === 'string' ? target : target.import ?? target.default;
      if (typeof file === 'string' && file.endsWith('.js')) {
        imports[name + key.slice(1)] = `/node_modules/${name}/${file.slice(2)}`;
      }
    }
  }
  return imports;
}

// The page's origin: the page, the packages' files and the descriptor set.
function serve(descriptors) {
  const page = `<!doctype html><meta charset="utf-8"><title>connect-web</title>
<script type="importmap">${JSON.stringify({ imports: importMap() })}</script>`;
  const server = createServer((request, response) => {
    const path = new URL(request.url, 'http://x').pathname;
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html' }).end(page);
    } else if (path === '/descriptors.binpb') {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
        .end(readFileSync(descriptors));
    } else if (path.startsWith('/node_modules/') && path.endsWith('.js')) {
      const file = normalize(join(modules, path.slice('/node_modules/'.length)));
      if (!file.startsWith(modules)) {
        response.writeHead(403).end();
        return;
      }
      try {
        response.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file));
      } catch {
        response.writeHead(404).end();
      }
    } else {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// Runs `script(gateway)` in a page of another origin that can import the packages.
async function inPage(descriptors, gateway, script) {
  const server = await serve(descriptors);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    return await page.evaluate(script, gateway);
  } finally {
    await browser.close();
    server.close();
  }
}

test('connect-web calls the sensors API cross-origin from Chromium',
  { skip: sensors ? false : 'SENSORS_CONNECT_URL is not set', timeout: 90_000 },
  async () => {
    const got = await inPage(process.env.SENSORS_DESCRIPTOR_SET, sensors, async (gateway) => {
      const { createFileRegistry, fromBinary } = await import('@bufbuild/protobuf');
      const { FileDescriptorSetSchema } = await import('@bufbuild/protobuf/wkt');
      const { Code, createClient } = await import('@connectrpc/connect');
      const { createConnectTransport } = await import('@connectrpc/connect-web');
      const bytes = new Uint8Array(await (await fetch('/descriptors.binpb')).arrayBuffer());
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
      const service = registry.getService('telemetry.v1.Sensors');
      const client = (options) => createClient(service,
        createConnectTransport({ baseUrl: gateway, ...options }));
      const out = {};
      let trailers;
      const json = await client({}).getReading({ sensor: 'web' },
        { onTrailer: (t) => { trailers = t; } });
      out.json = [json.sensor, String(json.sequence), trailers.get('foo')];
      const binary = await client({ useBinaryFormat: true }).getReading({ sensor: 'bin' });
      out.binary = binary.sensor;
      const methods = [];
      const viaGet = await client({
        useHttpGet: true,
        fetch: (input, init) => {
          methods.push(init?.method);
          return fetch(input, init);
        },
      }).getReading({ sensor: 'get' });
      out.get = [viaGet.sensor, methods];
      out.stream = [];
      for await (const reading of client({}).watchReadings({ sensor: 'w', count: 3 })) {
        out.stream.push(String(reading.sequence));
      }
      try {
        await client({}).getReading({ sensor: 'broken' });
      } catch (error) {
        out.error = [error.code === Code.Internal, error.rawMessage,
          error.details.map((d) => d.type)];
      }
      try {
        await client({}).getReading({ sensor: 'slow', delayMs: 3000 }, { timeoutMs: 200 });
      } catch (error) {
        out.deadline = error.code === Code.DeadlineExceeded;
      }
      return out;
    });
    assert.deepEqual(got.json, ['web', '9223372036854775807', 'foo2']);
    assert.equal(got.binary, 'bin');
    assert.deepEqual(got.get, ['get', ['GET']]);
    assert.deepEqual(got.stream, ['1', '2', '3']);
    assert.deepEqual(got.error, [true, 'sensor broken',
      ['google.rpc.DebugInfo', 'google.rpc.BadRequest']]);
    assert.equal(got.deadline, true);
  });

test('connect-web reads articles cross-origin from Chromium, by POST and GET',
  { skip: articles ? false : 'ARTICLES_CONNECT_URL is not set', timeout: 90_000 },
  async () => {
    const got = await inPage(process.env.ARTICLES_DESCRIPTOR_SET, articles, async (gateway) => {
      const { createFileRegistry, fromBinary } = await import('@bufbuild/protobuf');
      const { FileDescriptorSetSchema } = await import('@bufbuild/protobuf/wkt');
      const { Code, createClient } = await import('@connectrpc/connect');
      const { createConnectTransport } = await import('@connectrpc/connect-web');
      const bytes = new Uint8Array(await (await fetch('/descriptors.binpb')).arrayBuffer());
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
      const service = registry.getService('article.v1.ArticleService');
      const out = {};
      for (const useHttpGet of [false, true]) {
        const methods = [];
        const client = createClient(service, createConnectTransport({
          baseUrl: gateway,
          useHttpGet,
          fetch: (input, init) => {
            methods.push(init?.method);
            return fetch(input, init);
          },
        }));
        const page = await client.articleList({ page: 1, pageSize: 3 });
        const detail = await client.articleDetail({ pk: 2 });
        let missing;
        try {
          await client.articleDetail({ pk: 999 });
        } catch (error) {
          missing = error.code === Code.NotFound;
        }
        const ids = [];
        for await (const article of client.exportArticles({ afterId: 10 })) ids.push(article.id);
        out[useHttpGet ? 'get' : 'post'] = {
          page: page.articles.map((a) => a.id), detail: detail.article.id, missing, ids, methods,
        };
      }
      return out;
    });
    for (const [how, method] of [['post', 'POST'], ['get', 'GET']]) {
      assert.deepEqual(got[how].page, [1, 2, 3], how);
      assert.equal(got[how].detail, 2, how);
      assert.equal(got[how].missing, true, how);
      assert.deepEqual(got[how].ids, [11, 12], how);
      // The reads are GETs when asked; the server stream is always a POST.
      assert.deepEqual(got[how].methods, [method, method, method, 'POST'], how);
    }
  });
