/** docs/deployment.md's values reference is generated from the chart's values.schema.json and values.yaml. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEPLOYMENT_DOC, deploymentDoc } from '../../scripts/gen-deploy-docs.ts';

test('docs/deployment.md documents every chart value as the schema declares it', () => {
  const current = readFileSync(DEPLOYMENT_DOC, 'utf8');
  assert.equal(current, deploymentDoc(current), 'out of date: run `node scripts/gen-deploy-docs.ts`');
});
