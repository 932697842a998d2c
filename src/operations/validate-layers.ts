/**
 * The layers `validate` checks, by name and the snapshot type each applies to, in the guide's pipeline
 * order: what the CLI's options and the config check need, without loading the validators themselves
 * (they load every layer's sources; lazy-imports.test.ts). validate.ts refuses to load if its registry
 * and this list ever disagree.
 */
import type { SnapshotType } from '../core/repository/model.ts';

export const VALIDATION_LAYERS: readonly { layer: string; appliesTo: SnapshotType }[] = [
  { layer: 'mongodb', appliesTo: 'mongodb' },
  { layer: 'pvc', appliesTo: 'pvc-snapshots' },
  { layer: 'cluster-state', appliesTo: 'cluster-state' },
  { layer: 'secrets', appliesTo: 'secrets' },
  { layer: 'terraform', appliesTo: 'terraform' },
  { layer: 'files', appliesTo: 'files' },
];

export const LAYER_NAMES: string[] = VALIDATION_LAYERS.map((v) => v.layer);

/** `pvc` or `pvc-snapshots` → its layer; undefined for an unknown name. */
export function validationLayer(name: string): (typeof VALIDATION_LAYERS)[number] | undefined {
  return VALIDATION_LAYERS.find((v) => v.layer === name || v.appliesTo === name);
}
