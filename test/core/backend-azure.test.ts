// Needs: Azurite (started by test/env/azurite.ts). Runs the shared backend conformance suite.
import { azureKind } from '../env/backends.ts';
import { backendConformance } from './backend-conformance.ts';

backendConformance(azureKind.name, async ({ listPageSize }) => {
  const loc = await azureKind.newLocation({ listPageSize });
  return { backend: loc.backend, secrets: loc.secrets, cleanup: loc.cleanup };
});
