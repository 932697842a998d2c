// Needs: Azurite and versitygw (started by test/env/backends.ts on first use); local disk and memory need
// nothing.
// The shared backend conformance suite, run once for every backend in the one list, and for the in-memory
// backend (it has no repository URL, so it is not in that list: see test/env/backends.ts).
import { BACKENDS } from '../env/backends.ts';
import { MemoryBackend } from '../../src/core/storage/memory.ts';
import { backendConformance } from './backend-conformance.ts';

backendConformance('memory', async () => ({ backend: new MemoryBackend() }));

for (const b of BACKENDS) {
  backendConformance(b.name, async ({ listPageSize }) => {
    const loc = await b.direct({ listPageSize });
    return { backend: loc.backend, secrets: loc.secrets, cleanup: loc.cleanup };
  });
}
