// The Connect protocol from node against the article service through the gateway's one port:
// connect-node's Connect transport (JSON and binary, HTTP/1.1 and HTTP/2), reads by GET (the
// article proto marks them NO_SIDE_EFFECTS), a write with the bearer token forwarded and one
// without, a server stream. The descriptors come from the encoded FileDescriptorSet at run
// time. Started by the service's Rust test `connect_from_node_reaches_the_service_...`, which
// sets ARTICLES_CONNECT_URL, ARTICLES_DESCRIPTOR_SET and ARTICLES_TOKEN.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Code, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';

const baseUrl = process.env.ARTICLES_CONNECT_URL;
const skip = baseUrl ? false : 'ARTICLES_CONNECT_URL is not set';

function clients(options = {}) {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(process.env.ARTICLES_DESCRIPTOR_SET));
  const service = createFileRegistry(set).getService('article.v1.ArticleService');
  assert.ok(service, 'article.v1.ArticleService in the descriptor set');
  return ['1.1', '2'].flatMap((httpVersion) => [false, true].map((useBinaryFormat) => ({
    name: `HTTP/${httpVersion} ${useBinaryFormat ? 'proto' : 'json'}`,
    client: createClient(service, createConnectTransport({
      baseUrl, httpVersion, useBinaryFormat, ...options,
    })),
  })));
}

test('lists, reads and misses articles, by POST and by GET', { skip, timeout: 30_000 },
  async () => {
    for (const useHttpGet of [false, true]) {
      for (const { name, client } of clients({ useHttpGet })) {
        let headers;
        const page = await client.articleList({ page: 2, pageSize: 5 },
          { onHeader: (h) => { headers = h; } });
        assert.deepEqual(page.articles.map((a) => a.id), [6, 7, 8, 9, 10], name);
        assert.equal(page.total, 12, name);
        // Only a GET's answer carries the gateway's caching headers.
        assert.equal(headers.has('etag'), useHttpGet, name);
        const detail = await client.articleDetail({ pk: 3 });
        assert.equal(detail.article.id, 3, name);
        await assert.rejects(client.articleDetail({ pk: 999 }), (error) => {
          assert.equal(error.code, Code.NotFound, name);
          return true;
        });
      }
    }
  });

test('a write needs the bearer token, which is forwarded', { skip, timeout: 30_000 },
  async () => {
    for (const { name, client } of clients()) {
      await assert.rejects(
        client.createArticle({ title: 'Connect', content: 'no token' }),
        (error) => {
          assert.equal(error.code, Code.Unauthenticated, name);
          return true;
        });
      const created = await client.createArticle({ title: 'Connect', content: name },
        { headers: { authorization: `Bearer ${process.env.ARTICLES_TOKEN}` } });
      assert.ok(created.article.id > 12, name);
      assert.equal(created.article.content, name);
    }
  });

test('a server stream arrives over both HTTP versions', { skip, timeout: 30_000 }, async () => {
  for (const { name, client } of clients()) {
    const ids = [];
    for await (const article of client.exportArticles({ afterId: 9 })) {
      ids.push(article.id);
    }
    // The demo's last three, then those the write test created.
    assert.deepEqual(ids.slice(0, 3), [10, 11, 12], name);
    assert.ok(ids.length > 3, name);
  }
});
