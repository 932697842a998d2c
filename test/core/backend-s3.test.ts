// Needs: versitygw (scripts/tools/versitygw.ts, started by test/env/s3.ts). Runs the shared backend conformance suite.
import { s3Kind } from '../env/backends.ts';
import { backendConformance } from './backend-conformance.ts';

backendConformance(s3Kind.name, async ({ listPageSize }) => {
  const loc = await s3Kind.newLocation({ listPageSize });
  return { backend: loc.backend, secrets: loc.secrets, cleanup: loc.cleanup };
});
