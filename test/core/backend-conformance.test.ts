// Needs: Azurite and versitygw (started by test/env/backends.ts on first use); local disk needs nothing.
// The shared backend conformance suite, run once for every backend in the one list.
import { BACKENDS } from '../env/backends.ts';
import { backendConformance } from './backend-conformance.ts';

for (const b of BACKENDS) {
  backendConformance(b.name, async ({ listPageSize }) => {
    const loc = await b.direct({ listPageSize });
    return { backend: loc.backend, secrets: loc.secrets, cleanup: loc.cleanup };
  });
}
