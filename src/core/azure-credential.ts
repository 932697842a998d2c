/**
 * DefaultAzureCredential (managed identity, AKS workload identity, Azure CLI, environment), shared by the
 * Blob backend and the Key Vault keystore. Loaded lazily: @azure/identity is heavy and unused with account
 * keys, SAS tokens or connection strings.
 */
import type { TokenCredential } from '@azure/core-auth';

let shared: TokenCredential | undefined;

export function defaultAzureCredential(): TokenCredential {
  if (!shared) {
    let inner: Promise<TokenCredential> | undefined;
    shared = {
      async getToken(scopes, opts) {
        inner ??= import('@azure/identity').then((m) => new m.DefaultAzureCredential());
        return (await inner).getToken(scopes, opts);
      },
    };
  }
  return shared;
}
