// The Connect protocol from node, as a Connect client calls any Connect server: connect-node's
// Connect transport (JSON and binary, HTTP/1.1 and HTTP/2, GET for a method without side
// effects, gzip) against the gateway's one port, in front of the sensors test backend (no
// health, no reflection). The descriptors are read at run time from the encoded
// FileDescriptorSet (no generated code). Started by the gateway's Rust test
// `connect_clients_from_node_and_chromium_call_every_kind_of_method`, which sets
// SENSORS_CONNECT_URL and SENSORS_DESCRIPTOR_SET.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport } from '@connectrpc/connect-node';

const base = process.env.SENSORS_CONNECT_URL;
const skip = base ? false : 'SENSORS_CONNECT_URL is not set';

function service() {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(process.env.SENSORS_DESCRIPTOR_SET));
  const found = createFileRegistry(set).getService('telemetry.v1.Sensors');
  assert.ok(found, 'telemetry.v1.Sensors in the descriptor set');
  return found;
}

// Every HTTP version and codec, for the unary and server-streaming tests.
const variants = [];
for (const httpVersion of ['1.1', '2']) {
  for (const useBinaryFormat of [false, true]) variants.push({ httpVersion, useBinaryFormat });
}
const name = (v) => `HTTP/${v.httpVersion} ${v.useBinaryFormat ? 'proto' : 'json'}`;

function client(options, desc = service()) {
  return createClient(desc, createConnectTransport({ baseUrl: base, ...options }));
}

test('a unary call gets its message, header metadata and trailers, in JSON and binary',
  { skip, timeout: 30_000 }, async () => {
    for (const v of variants) {
      let headers;
      let trailers;
      const reading = await client(v).getReading({ sensor: 's1' }, {
        onHeader: (h) => { headers = h; },
        onTrailer: (t) => { trailers = t; },
      });
      assert.equal(reading.sensor, 's1', name(v));
      assert.equal(reading.sequence, 9223372036854775807n, name(v));
      assert.equal(headers.get('foo'), 'foo1', name(v));
      assert.equal(trailers.get('foo'), 'foo2', name(v));
    }
  });

test('useHttpGet calls a method without side effects with GET',
  { skip, timeout: 30_000 }, async () => {
    for (const v of variants) {
      let headers;
      const reading = await client({ ...v, useHttpGet: true })
        .getReading({ sensor: 'g' }, { onHeader: (h) => { headers = h; } });
      assert.equal(reading.sensor, 'g', name(v));
      // What only the gateway's answers to a GET carry.
      assert.equal(headers.get('cache-control'), 'no-cache', name(v));
      assert.ok(headers.get('etag'), name(v));
    }
  });

test('errors keep their code, message, metadata and google.rpc details',
  { skip, timeout: 30_000 }, async () => {
    for (const v of variants) {
      await assert.rejects(client(v).getReading({ sensor: 'broken' }), (error) => {
        assert.ok(error instanceof ConnectError, name(v));
        assert.equal(error.code, Code.Internal, name(v));
        assert.equal(error.rawMessage, 'sensor broken');
        assert.deepEqual(error.details.map((d) => d.type),
          ['google.rpc.DebugInfo', 'google.rpc.BadRequest']);
        // Connect merges the header metadata and the trailers.
        assert.equal(error.metadata.get('foo'), 'foo1, foo2');
        return true;
      });
      await assert.rejects(client(v).getReading({ sensor: 'missing' }), (error) => {
        assert.equal(error.code, Code.NotFound, name(v));
        assert.equal(error.metadata.get('where'), 'trailers-only');
        return true;
      });
    }
  });

test('a procedure the gateway does not serve is unimplemented',
  { skip, timeout: 30_000 }, async () => {
    const desc = service();
    // The same method under a service the descriptors do not have.
    const ghost = { ...desc, typeName: 'telemetry.v1.Ghost' };
    ghost.methods = desc.methods.map((m) => ({ ...m, parent: ghost }));
    ghost.method = Object.fromEntries(ghost.methods.map((m) => [m.localName, m]));
    for (const v of variants) {
      await assert.rejects(client(v, ghost).getReading({ sensor: 's' }), (error) => {
        assert.equal(error.code, Code.Unimplemented, `${name(v)}: ${error.message}`);
        return true;
      });
    }
  });

test('the deadline is the client\'s timeout', { skip, timeout: 30_000 }, async () => {
  for (const v of variants) {
    const started = Date.now();
    await assert.rejects(
      client(v).getReading({ sensor: 'slow', delayMs: 3000 }, { timeoutMs: 300 }),
      (error) => {
        assert.equal(error.code, Code.DeadlineExceeded, name(v));
        return true;
      });
    assert.ok(Date.now() - started < 2500, name(v));
  }
});

test('gzip both ways, for unary calls and streams', { skip, timeout: 30_000 }, async () => {
  const long = 'x'.repeat(5000);
  for (const httpVersion of ['1.1', '2']) {
    const options = {
      httpVersion,
      sendCompression: compressionGzip,
      acceptCompression: [compressionGzip],
      compressMinBytes: 16,
    };
    let encoding;
    const summary = await client(options).uploadFirmware(
      { sensor: long, firmware: { contentType: 'application/octet-stream', data: new Uint8Array(10) } },
      { onHeader: (h) => { encoding = h.get('content-encoding'); } });
    assert.deepEqual(summary.sensors, ['application/octet-stream', long], httpVersion);
    assert.equal(encoding, 'gzip', httpVersion);
    async function* readings() {
      yield { sensor: long };
      yield { sensor: 'b' };
    }
    const uploaded = await client(options).uploadReadings(readings());
    assert.deepEqual(uploaded.sensors, [long, 'b'], httpVersion);
  }
});

test('server streams arrive message by message and end with their status and details',
  { skip, timeout: 30_000 }, async () => {
    for (const v of variants) {
      const sequences = [];
      for await (const reading of client(v).watchReadings({ sensor: 'w1', count: 3 })) {
        sequences.push(reading.sequence);
      }
      assert.deepEqual(sequences, [1n, 2n, 3n], name(v));

      const seen = [];
      await assert.rejects(async () => {
        for await (const reading of client(v).watchReadings({ sensor: 'failing', count: 5 })) {
          seen.push(reading.sequence);
        }
      }, (error) => {
        assert.equal(error.code, Code.DataLoss, name(v));
        assert.equal(error.rawMessage, 'sensor lost');
        assert.equal(error.details[0].type, 'google.rpc.DebugInfo');
        return true;
      });
      assert.deepEqual(seen, [1n, 2n], name(v));
    }
  });

test('client streams over HTTP/1.1 and HTTP/2, bidirectional over HTTP/2',
  { skip, timeout: 30_000 }, async () => {
    for (const v of variants) {
      async function* readings() {
        for (const sensor of ['a', 'b', 'c']) yield { sensor };
      }
      const summary = await client(v).uploadReadings(readings());
      assert.equal(summary.count, 3, name(v));
      assert.deepEqual(summary.sensors, ['a', 'b', 'c'], name(v));
    }
    for (const useBinaryFormat of [false, true]) {
      // Each message is echoed before the next is sent: a real exchange.
      const queue = [];
      let wake;
      async function* requests() {
        yield { sensor: 'one' };
        while (queue.length === 0) await new Promise((resolve) => { wake = resolve; });
        yield queue.shift();
      }
      const echoes = [];
      for await (const echo of client({ httpVersion: '2', useBinaryFormat }).relay(requests())) {
        echoes.push(echo.sensor);
        if (echoes.length === 1) {
          queue.push({ sensor: 'two' });
          wake?.();
        }
      }
      assert.deepEqual(echoes, ['one', 'two']);
    }
  });

test('a message over the body limit is resource_exhausted', { skip, timeout: 30_000 }, async () => {
  // Over HTTP/2: an HTTP/1.1 client still writing a body the server refused may see the
  // connection close first (EPIPE); the Rust tests check the HTTP/1.1 answer.
  for (const v of variants.filter((v) => v.httpVersion === '2')) {
    await assert.rejects(client(v).getReading({ sensor: 'x'.repeat(2 * 1024 * 1024) }), (error) => {
      assert.equal(error.code, Code.ResourceExhausted, `${name(v)}: ${error.message}`);
      return true;
    });
  }
});
