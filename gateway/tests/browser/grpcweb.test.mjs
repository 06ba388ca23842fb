// gRPC-Web from node, as a browser app would call it: Connect's gRPC-Web transport against the
// gateway's one port, in front of the sensors test backend. The service descriptors are built
// at run time from the encoded FileDescriptorSet (no protoc plugin, no generated code).
// Started by the gateway's Rust test `grpc_web_from_node_calls_the_gateway_port`, which sets
// SENSORS_GRPC_WEB_URL and SENSORS_DESCRIPTOR_SET.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-node';

const base = process.env.SENSORS_GRPC_WEB_URL;
const skip = base ? false : 'SENSORS_GRPC_WEB_URL is not set';

function client(httpVersion) {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(process.env.SENSORS_DESCRIPTOR_SET));
  const service = createFileRegistry(set).getService('telemetry.v1.Sensors');
  assert.ok(service, 'telemetry.v1.Sensors in the descriptor set');
  return createClient(service, createGrpcWebTransport({ baseUrl: base, httpVersion }));
}

test('a unary call over HTTP/1.1 and HTTP/2 gets its message, headers and trailers',
  { skip, timeout: 30_000 }, async () => {
    for (const version of ['1.1', '2']) {
      let headers;
      let trailers;
      const reading = await client(version).getReading({ sensor: 's1' }, {
        onHeader: (h) => { headers = h; },
        onTrailer: (t) => { trailers = t; },
      });
      assert.equal(reading.sensor, 's1', version);
      assert.equal(reading.sequence, 9223372036854775807n, version);
      assert.equal(headers.get('foo'), 'foo1', version);
      assert.equal(trailers.get('foo'), 'foo2', version);
    }
  });

test('a server stream arrives message by message and ends with its status and details',
  { skip, timeout: 30_000 }, async () => {
    const sequences = [];
    for await (const reading of client('1.1').watchReadings({ sensor: 'w1', count: 3 })) {
      sequences.push(reading.sequence);
    }
    assert.deepEqual(sequences, [1n, 2n, 3n]);

    const seen = [];
    await assert.rejects(async () => {
      for await (const reading of client('1.1').watchReadings({ sensor: 'failing', count: 5 })) {
        seen.push(reading.sequence);
      }
    }, (error) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.DataLoss, error.rawMessage);
      assert.equal(error.rawMessage, 'sensor lost');
      assert.equal(error.details.length, 1);
      assert.equal(error.details[0].type, 'google.rpc.DebugInfo');
      return true;
    });
    assert.deepEqual(seen, [1n, 2n]);
  });

test('errors keep their code, message and google.rpc details',
  { skip, timeout: 30_000 }, async () => {
    await assert.rejects(client('1.1').getReading({ sensor: 'broken' }), (error) => {
      assert.equal(error.code, Code.Internal);
      assert.equal(error.rawMessage, 'sensor broken');
      assert.deepEqual(error.details.map((d) => d.type),
        ['google.rpc.DebugInfo', 'google.rpc.BadRequest']);
      return true;
    });
    // Trailers-only, from the backend.
    await assert.rejects(client('2').getReading({ sensor: 'missing' }), (error) => {
      assert.equal(error.code, Code.NotFound);
      assert.equal(error.metadata.get('where'), 'trailers-only');
      return true;
    });
  });
