/**
 * versitygw: a real S3 server (the Versity S3 Gateway over a POSIX directory), built from the Go module
 * proxy. Chosen over MinIO because MinIO publishes no semver module versions (go install needs one) and
 * versitygw builds in about three minutes on 2 cores; it implements conditional writes (If-None-Match)
 * and multipart uploads, which the S3 backend relies on.
 */
import path from 'node:path';
import { run, type Tool } from './toolbox.ts';

const VERSION = 'v1.8.0';

export const versitygw: Tool = {
  name: 'versitygw',
  version: VERSION,
  files: ['bin/versitygw'],
  async install(dir: string) {
    await run('go', ['install', '-trimpath', `github.com/versity/versitygw/cmd/versitygw@${VERSION}`], {
      env: { ...process.env, GOBIN: path.join(dir, 'bin'), GOFLAGS: '-mod=mod', GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? 'local' },
      quiet: true,
    });
  },
};
