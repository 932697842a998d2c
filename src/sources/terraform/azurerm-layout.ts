/**
 * How the azurerm backend names its blobs (no SDK here, so callers that only need names stay light): the
 * default workspace's state is the blob `key`, every other workspace's is `key` + `env:` + name.
 */
const WORKSPACE_SEPARATOR = 'env:';

/** The workspace a blob of this backend holds, or undefined when the blob is not one of its states. */
export function workspaceOfBlob(key: string, blob: string): string | undefined {
  if (blob === key) return 'default';
  if (blob.startsWith(key + WORKSPACE_SEPARATOR)) return blob.slice(key.length + WORKSPACE_SEPARATOR.length);
  return undefined;
}

export function blobOfWorkspace(key: string, workspace: string): string {
  return workspace === 'default' ? key : key + WORKSPACE_SEPARATOR + workspace;
}
