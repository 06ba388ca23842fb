// gRPC-Web from node against the article service, as a browser app would call it: Connect's
// gRPC-Web transport, once straight to the service's gRPC port (tonic-web there) and once
// through the gateway's one port. The descriptors come from the encoded FileDescriptorSet at
// run time. Started by the service's Rust test `grpc_web_from_node_reaches_the_service_...`,
// which sets ARTICLES_GRPC_WEB_URLS (comma-separated) and ARTICLES_DESCRIPTOR_SET.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-node';

const urls = (process.env.ARTICLES_GRPC_WEB_URLS ?? '').split(',').filter(Boolean);
const skip = urls.length ? false : 'ARTICLES_GRPC_WEB_URLS is not set';

function clients() {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(process.env.ARTICLES_DESCRIPTOR_SET));
  const service = createFileRegistry(set).getService('article.v1.ArticleService');
  assert.ok(service, 'article.v1.ArticleService in the descriptor set');
  return urls.flatMap((baseUrl) => ['1.1', '2'].map((httpVersion) => ({
    name: `${baseUrl} over HTTP/${httpVersion}`,
    client: createClient(service, createGrpcWebTransport({ baseUrl, httpVersion })),
  })));
}

test('lists, reads and misses articles over gRPC-Web', { skip, timeout: 30_000 }, async () => {
  for (const { name, client } of clients()) {
    const page = await client.articleList({ page: 2, pageSize: 5 });
    assert.deepEqual(page.articles.map((a) => a.id), [6, 7, 8, 9, 10], name);
    assert.equal(page.total, 12, name);
    const detail = await client.articleDetail({ pk: 3 });
    assert.equal(detail.article.id, 3, name);
    await assert.rejects(client.articleDetail({ pk: 999 }), (error) => {
      assert.equal(error.code, Code.NotFound, name);
      return true;
    });
  }
});

test('a server stream arrives over gRPC-Web', { skip, timeout: 30_000 }, async () => {
  for (const { name, client } of clients()) {
    const ids = [];
    for await (const article of client.exportArticles({ afterId: 9 })) {
      ids.push(article.id);
    }
    assert.deepEqual(ids, [10, 11, 12], name);
  }
});
