/**
 * A real S3-compatible server for tests: versitygw (scripts/tools/versitygw.ts) serving a temp directory
 * on a free loopback port. Needed by: test/core/backend-s3.test.ts, storage-faults, bench/cloud.ts.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
import { ensureTool } from '../../scripts/tools/toolbox.ts';
import { versitygw } from '../../scripts/tools/versitygw.ts';
import { freePort, startServer, tempDir, waitForPort, type RunningServer } from './index.ts';

export interface S3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  server: RunningServer;
  /** Creates a bucket with a fresh random name and returns it. */
  newBucket(prefix?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startS3(): Promise<S3Server> {
  const dir = await ensureTool(versitygw);
  const data = await tempDir('lifeboat-s3-');
  const port = await freePort();
  const accessKeyId = 'lifeboattest';
  const secretAccessKey = randomBytes(16).toString('hex');
  const region = 'us-east-1';
  const server = await startServer({
    name: 'versitygw',
    command: path.join(dir, 'bin', 'versitygw'),
    args: ['--port', `127.0.0.1:${port}`, '--region', region, '--quiet', 'posix', data.path],
    env: { ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
    ready: () => waitForPort(port),
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const admin = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    server,
    async newBucket(prefix = 'lb') {
      const name = `${prefix}-${randomBytes(5).toString('hex')}`;
      await admin.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      admin.destroy();
      await server.stop();
      await data.cleanup();
    },
  };
}
