// Needs: versitygw (test/env/s3.ts). S3-only behaviour beyond the shared conformance suite (which
// test/core/backend-conformance.test.ts runs for every backend).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { S3Backend } from '../../src/core/storage/s3.ts';
import { sharedS3 } from '../env/backends.ts';
import { id } from './backend-conformance.ts';

test('s3: unfinished multipart uploads under the repository are leftovers, and can be removed', async () => {
  const srv = await sharedS3();
  const bucket = await srv.newBucket();
  const credentials = { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey };
  const b = new S3Backend(`s3://${bucket}/repo?endpoint=${srv.endpoint}`, { credentials });
  await b.create();
  const Bucket = bucket;
  // What a process killed mid-upload leaves: an upload with a part, never completed nor aborted.
  const name = id();
  const Key = `repo/data/${name.slice(0, 2)}/${name}`;
  const before = new Date(Date.now() - 2000);
  const { UploadId } = await b.client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  const Body = randomBytes(5 * 1024 * 1024);
  await b.client.send(
    new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body, ContentLength: Body.length }),
  );
  // Not ours: another repository's upload in the same bucket, and something beside the object types.
  await b.client.send(new CreateMultipartUploadCommand({ Bucket, Key: `other/data/${name}` }));
  await b.client.send(new CreateMultipartUploadCommand({ Bucket, Key: `repo/notes/${name}` }));

  const leftovers = [];
  for await (const l of b.listLeftovers()) leftovers.push(l);
  assert.equal(leftovers.length, 1, JSON.stringify(leftovers));
  assert.equal(leftovers[0].size, Body.length);
  assert.ok(leftovers[0].modified >= before && leftovers[0].modified <= new Date(Date.now() + 2000));

  await b.removeLeftover(leftovers[0].id);
  await b.removeLeftover(leftovers[0].id); // idempotent, as remove
  for await (const l of b.listLeftovers()) assert.fail(`still listed: ${l.id}`);
  const rest = await b.client.send(new ListMultipartUploadsCommand({ Bucket }));
  assert.deepEqual(rest.Uploads?.map((u) => u.Key).sort(), [`other/data/${name}`, `repo/notes/${name}`]);
  await assert.rejects(b.removeLeftover(`other/data/${name} ${rest.Uploads![0].UploadId}`), /refusing/);
  await b.close();
});
