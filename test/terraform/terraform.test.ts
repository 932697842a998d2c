// `terraform backup` / `terraform restore` / `validate --type terraform` through the real CLI, against a
// local working directory and an azurerm backend in Azurite (real blob leases and metadata).
//
// Real peers: OpenTofu is not one of the tools `npm test` builds. `go install
// github.com/opentofu/opentofu/cmd/tofu@v1.10.6` fails (its go.mod has a replace directive for hcl/v2);
// through a scratch module that repeats the replace, `go mod tidy` + `go build` took 802 s on this 2-core
// machine (measured 2026-12-01, with a test run beside it), well over the ~8 minutes a cold pretest may
// add. So the states here are written by hand in Terraform's state format v4 (version, terraform_version,
// serial, lineage, outputs, resources: what `tofu apply` with a `terraform_data` resource writes, checked
// against OpenTofu 1.10.6's output), and the azurerm blobs the way the azurerm backend writes them: the
// default workspace at `key`, others at `key` + `env:` + name, a lock as a blob lease plus metadata
// `terraformlockid` = base64 of the lock info JSON. With LIFEBOAT_TEST_TOFU=/path/to/tofu, the last
// suite also runs real `tofu init && tofu apply` (terraform_data only: no provider download).
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { runCli } from '../env/cli.ts';
import { tempDir, type TempDir } from '../env/index.ts';
import { sharedAzurite } from '../env/backends.ts';
import { AZURITE_ACCOUNT } from '../env/azurite.ts';
import { AzurermStates } from '../../src/sources/terraform/azurerm.ts';
import { isLifeboatError } from '../../src/core/errors.ts';

/** What an `access_key` in `.terraform/terraform.tfstate` looks like; must never be printed. */
const SECRET = 'c2VjcmV0LWFjY2Vzcy1rZXktNDI0MjQyNDI0Mg==';
/** A resource value: state holds secrets too, and they must not reach snapshot meta or output. */
const RESOURCE_SECRET = 'db-password-do-not-print';

let work: TempDir;
let n = 0;

before(async () => {
  work = await tempDir('lifeboat-terraform-');
});
after(async () => {
  await work.cleanup();
});

/** A state file as Terraform/OpenTofu 1.x writes it (format v4), with one terraform_data resource. */
function stateV4(lineage: string, serial: number, extra = ''): string {
  return (
    JSON.stringify(
      {
        version: 4,
        terraform_version: '1.10.6',
        serial,
        lineage,
        outputs: { password: { value: RESOURCE_SECRET, type: 'string', sensitive: true } },
        resources: [
          {
            mode: 'managed',
            type: 'terraform_data',
            name: 'marker',
            provider: 'provider["terraform.io/builtin/terraform"]',
            instances: [
              {
                schema_version: 0,
                attributes: {
                  id: randomUUID(),
                  input: extra || null,
                  output: extra || null,
                  triggers_replace: null,
                },
                sensitive_attributes: [],
              },
            ],
          },
        ],
        check_results: null,
      },
      null,
      2,
    ) + '\n'
  );
}

const backendConfig = JSON.stringify({
  version: 3,
  serial: 1,
  lineage: randomUUID(),
  backend: {
    type: 'azurerm',
    config: {
      storage_account_name: 'tfstate',
      container_name: 'tfstate',
      key: 'prod.tfstate',
      access_key: SECRET,
    },
    hash: 12345,
  },
});

async function newRepo(env: NodeJS.ProcessEnv = {}) {
  const repo = path.join(work.path, `repo-${++n}`);
  const base = { LIFEBOAT_PASSWORD: 'x', XDG_CONFIG_HOME: path.join(work.path, 'cfg'), ...env };
  const cli = async (args: string[]) => {
    const r = await runCli(['--repo', repo, ...args], { env: base, cwd: work.path });
    // Whatever the command, neither the backend credential nor a resource value is ever printed.
    for (const s of [SECRET, RESOURCE_SECRET]) {
      assert.ok(!r.stdout.includes(s), `secret in stdout of ${args.join(' ')}`);
      assert.ok(!r.stderr.includes(s), `secret in stderr of ${args.join(' ')}`);
    }
    return r;
  };
  const init = await cli(['init']);
  assert.equal(init.code, 0, init.stderr);
  return cli;
}

async function write(file: string, text: string) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text, { mode: 0o600 });
}

describe('local working directory', () => {
  test('capture and restore round trip byte-identical; lineage and serial in the snapshot meta', async () => {
    const cli = await newRepo();
    const dir = path.join(work.path, `wd-${++n}`);
    const files = {
      'terraform.tfstate': stateV4('lin-default', 7),
      'terraform.tfstate.d/staging/terraform.tfstate': stateV4('lin-staging', 2),
      '.terraform/terraform.tfstate': backendConfig,
      '.terraform/environment': 'staging',
    };
    for (const [rel, text] of Object.entries(files)) await write(path.join(dir, rel), text);
    // Provider downloads are not state: left out.
    await write(path.join(dir, '.terraform/providers/big.bin'), 'x'.repeat(1000));

    const b = await cli(['terraform', 'backup', '--dir', dir, '--json']);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(
      b.json.workspaces.map((w: { workspace: string; serial: number; lineage: string }) => [
        w.workspace,
        w.serial,
        w.lineage,
      ]),
      [
        ['default', 7, 'lin-default'],
        ['staging', 2, 'lin-staging'],
      ],
    );
    assert.equal(b.json.items, 4);
    // Logs too: a verbose run prints nothing of the backend credential (newRepo's runner checks).
    assert.equal((await cli(['terraform', 'backup', '--dir', dir, '--verbose'])).code, 0);
    const shown = await cli(['show', b.json.id, '--json']);
    assert.equal(shown.code, 0, shown.stderr);

    const target = path.join(work.path, `restored-${n}`);
    const r = await cli(['terraform', 'restore', '--target', target, '--json']);
    assert.equal(r.code, 0, r.stderr);
    for (const [rel, text] of Object.entries(files))
      assert.equal(await readFile(path.join(target, rel), 'utf8'), text, rel);
  });

  test('restore refuses a lower serial and a lineage mismatch; --force overrides; nothing half-written', async () => {
    const cli = await newRepo();
    const dir = path.join(work.path, `wd-${++n}`);
    const old = stateV4('lin-a', 3);
    await write(path.join(dir, 'terraform.tfstate'), old);
    await write(path.join(dir, 'terraform.tfstate.d/qa/terraform.tfstate'), stateV4('lin-qa', 1));
    assert.equal((await cli(['terraform', 'backup', '--dir', dir])).code, 0);

    // Terraform moved on: the default workspace's state is newer than the snapshot's.
    const newer = stateV4('lin-a', 4, 'changed');
    await write(path.join(dir, 'terraform.tfstate'), newer);
    const qaOther = stateV4('lin-other', 9);
    await write(path.join(dir, 'terraform.tfstate.d/qa/terraform.tfstate'), qaOther);
    const refused = await cli(['terraform', 'restore', '--target', dir]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /serial 3 in the snapshot is lower than serial 4/);
    assert.match(refused.stderr, /lineage mismatch/);
    assert.equal(await readFile(path.join(dir, 'terraform.tfstate'), 'utf8'), newer);
    assert.equal(await readFile(path.join(dir, 'terraform.tfstate.d/qa/terraform.tfstate'), 'utf8'), qaOther);

    // --workspace qa alone: only qa's lineage mismatch is in the way, default's serial is not looked at.
    const one = await cli(['terraform', 'restore', '--target', dir, '--workspace', 'qa']);
    assert.equal(one.code, 1);
    assert.match(one.stderr, /lineage mismatch/);
    assert.doesNotMatch(one.stderr, /serial 3/);

    const forced = await cli(['terraform', 'restore', '--target', dir, '--force', '--json']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await readFile(path.join(dir, 'terraform.tfstate'), 'utf8'), old);
    assert.equal(forced.json.workspaces[0].previousSerial, 4);
    assert.match(forced.json.workspaces[0].overridden, /lower/);

    // Same lineage, same serial: allowed without --force (Terraform's rule: higher or equal).
    const again = await cli(['terraform', 'restore', '--target', dir]);
    assert.equal(again.code, 0, again.stderr);
  });

  test('validate warns on a serial regression and a lineage change between the two newest captures', async () => {
    const cli = await newRepo();
    const dir = path.join(work.path, `wd-${++n}`);
    await write(path.join(dir, 'terraform.tfstate'), stateV4('lin-v', 10));
    await write(path.join(dir, 'terraform.tfstate.d/dev/terraform.tfstate'), stateV4('lin-dev', 1));
    assert.equal((await cli(['terraform', 'backup', '--dir', dir])).code, 0);
    const clean = await cli(['validate', '--type', 'terraform']);
    assert.equal(clean.code, 0, clean.stderr);
    // A crafted regression: an older state written back, and dev's state replaced by another one.
    await write(path.join(dir, 'terraform.tfstate'), stateV4('lin-v', 9));
    await write(path.join(dir, 'terraform.tfstate.d/dev/terraform.tfstate'), stateV4('lin-new', 5));
    assert.equal((await cli(['terraform', 'backup', '--dir', dir])).code, 0);
    const v = await cli(['validate', '--type', 'terraform', '--json']);
    assert.equal(v.code, 1, v.stderr);
    const tf = v.json.results.find((r: { type: string }) => r.type === 'terraform');
    assert.equal(tf.status, 'warning');
    assert.equal(tf.warnings.length, 2);
    assert.match(tf.warnings.join('\n'), /workspace default: serial went backwards from 10 .* to 9/);
    assert.match(tf.warnings.join('\n'), /workspace dev: lineage changed from lin-dev .* to lin-new/);
    assert.match(v.stderr, /serial went backwards/);
  });

  test('a directory without state is an error, not an empty snapshot', async () => {
    const cli = await newRepo();
    const dir = path.join(work.path, `empty-${++n}`);
    await mkdir(dir);
    const r = await cli(['terraform', 'backup', '--dir', dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /found nothing/);
  });
});

describe('azurerm backend in Azurite', () => {
  let container: ContainerClient;
  let env: NodeJS.ProcessEnv;
  const name = `tfstate${randomBytes(4).toString('hex')}`;
  const key = 'prod.terraform.tfstate';
  const lockInfo = {
    ID: randomUUID(),
    Operation: 'OperationTypeApply',
    Info: '',
    Who: 'ci@runner-7',
    Version: '1.10.6',
    Created: new Date(Date.now() - 3 * 3600_000).toISOString(),
    Path: `${name}/${key}env:staging`,
  };
  let leaseId: string;

  before(async () => {
    const az = await sharedAzurite();
    env = { AZURE_STORAGE_CONNECTION_STRING: az.connectionString };
    container = BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient(name);
    await container.create();
    const put = (blob: string, text: string) =>
      container.getBlockBlobClient(blob).upload(text, Buffer.byteLength(text), {
        blobHTTPHeaders: { blobContentType: 'application/json' },
      });
    await put(key, stateV4('lin-prod', 5));
    await put(`${key}env:staging`, stateV4('lin-prod-staging', 2));
    await put(`${key}.unrelated`, 'not a state');
    // What the backend leaves when it locks a workspace that has no state yet: an empty blob.
    await put(`${key}env:fresh`, '');
    // Terraform's lock: a lease on the workspace blob, then the lock info in its metadata (with the lease).
    leaseId = randomUUID();
    const staging = container.getBlockBlobClient(`${key}env:staging`);
    await staging.getBlobLeaseClient(leaseId).acquireLease(-1);
    await staging.setMetadata(
      { terraformlockid: Buffer.from(JSON.stringify(lockInfo)).toString('base64') },
      { conditions: { leaseId } },
    );
  });

  const azurermArgs = () => [
    '--azurerm-account',
    AZURITE_ACCOUNT,
    '--azurerm-container',
    name,
    '--azurerm-key',
    key,
  ];

  test('capture reads every workspace, records the lock, and leaves the lease in place', async () => {
    const cli = await newRepo(env);
    const b = await cli(['terraform', 'backup', ...azurermArgs(), '--json']);
    assert.equal(b.code, 0, b.stderr);
    const ws = b.json.workspaces;
    assert.deepEqual(
      ws.map((w: { workspace: string; serial: number }) => [w.workspace, w.serial]),
      [
        ['default', 5],
        ['fresh', undefined],
        ['staging', 2],
      ],
    );
    assert.equal(ws[0].leaseState, 'available');
    assert.equal(ws[2].leaseState, 'leased');
    assert.equal(ws[2].leaseStatus, 'locked');
    assert.deepEqual(ws[2].lock, lockInfo);
    assert.match(b.stderr, /staging was locked at capture/);
    // Terraform's lease still holds: its owner can renew it, and a write without it is refused.
    const staging = container.getBlockBlobClient(`${key}env:staging`);
    assert.equal((await staging.getProperties()).leaseState, 'leased');
    await staging.getBlobLeaseClient(leaseId).renewLease();

    // The lock's own Created lies 3 h before the capture: validate reports it.
    const v = await cli(['validate', '--type', 'terraform', '--json']);
    assert.equal(v.code, 1, v.stderr);
    const tf = v.json.results.find((r: { type: string }) => r.type === 'terraform');
    assert.match(tf.warnings.join('\n'), /workspace staging: locked for 3\.0 h .*ci@runner-7/);

    // Restore to the blobs: a leased workspace is refused, and so is the whole restore.
    const refused = await cli(['terraform', 'restore', '--to-blob']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /leased: Terraform holds the lock on workspace staging/);

    // Terraform writes serial 6 to default; the snapshot's 5 is lower: refused, then --force writes it.
    const newer = stateV4('lin-prod', 6);
    await container.getBlockBlobClient(key).upload(newer, Buffer.byteLength(newer));
    const lower = await cli(['terraform', 'restore', '--to-blob', '--workspace', 'default']);
    assert.equal(lower.code, 1);
    assert.match(lower.stderr, /serial 5 in the snapshot is lower than serial 6/);
    const forced = await cli(['terraform', 'restore', '--to-blob', '--workspace', 'default', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    const now = await container.getBlockBlobClient(key).downloadToBuffer();
    assert.equal(JSON.parse(now.toString()).serial, 5);

    // --force over a lock breaks the lease (as force-unlock would) and writes without the lock metadata.
    const unlocked = await cli(['terraform', 'restore', '--to-blob', '--workspace', 'staging', '--force']);
    assert.equal(unlocked.code, 0, unlocked.stderr);
    const props = await staging.getProperties();
    assert.notEqual(props.leaseState, 'leased');
    assert.equal(props.metadata?.terraformlockid, undefined);
  });

  test('a blob write carries If-Match: a Terraform write in between is not overwritten', async () => {
    const states = new AzurermStates({ account: AZURITE_ACCOUNT, container: name, key }, env);
    const seen = await states.current(key);
    assert.ok(seen.exists);
    const concurrent = stateV4('lin-prod', 42);
    await container.getBlockBlobClient(key).upload(concurrent, Buffer.byteLength(concurrent));
    await assert.rejects(states.write(key, Buffer.from(stateV4('lin-prod', 43)), seen, false), (e) =>
      isLifeboatError(e, 'CONFLICT'),
    );
    assert.equal((await container.getBlockBlobClient(key).downloadToBuffer()).toString(), concurrent);
  });

  test('restore to a new, empty storage container (the backend was lost)', async () => {
    const cli = await newRepo(env);
    assert.equal((await cli(['terraform', 'backup', ...azurermArgs()])).code, 0);
    const fresh = `tfnew${randomBytes(4).toString('hex')}`;
    const other = BlobServiceClient.fromConnectionString(
      env.AZURE_STORAGE_CONNECTION_STRING!,
    ).getContainerClient(fresh);
    await other.create();
    const r = await cli([
      'terraform',
      'restore',
      '--to-blob',
      '--azurerm-account',
      AZURITE_ACCOUNT,
      '--azurerm-container',
      fresh,
      '--azurerm-key',
      key,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const names: string[] = [];
    for await (const b of other.listBlobsFlat()) names.push(b.name);
    // The empty capture is skipped: writing it would wipe a state, and there was none to restore.
    assert.deepEqual(names.sort(), [key, `${key}env:staging`]);
    assert.deepEqual(r.json.emptySkipped, ['fresh']);
    const original = await container.getBlockBlobClient(key).downloadToBuffer();
    assert.deepEqual(await other.getBlockBlobClient(key).downloadToBuffer(), original);
  });
});

const TOFU = process.env.LIFEBOAT_TEST_TOFU;

describe(
  'real OpenTofu state (LIFEBOAT_TEST_TOFU)',
  { skip: TOFU ? false : 'set LIFEBOAT_TEST_TOFU to a tofu binary' },
  () => {
    const config = `
resource "terraform_data" "marker" {
  input = var.release
}
variable "release" {
  type    = string
  default = "one"
}
`;
    const tofu = (dir: string, ...args: string[]) =>
      execFileSync(TOFU!, [...args, '-no-color'], {
        cwd: dir,
        env: { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1' },
        stdio: 'pipe',
      });

    test('tofu apply states round-trip; a second apply raises the serial; the push rule and validate fire', async () => {
      const cli = await newRepo();
      const dir = path.join(work.path, `tofu-${++n}`);
      await write(path.join(dir, 'main.tf'), config);
      tofu(dir, 'init', '-input=false');
      tofu(dir, 'apply', '-auto-approve', '-input=false');
      tofu(dir, 'workspace', 'new', 'staging');
      tofu(dir, 'apply', '-auto-approve', '-input=false');
      tofu(dir, 'workspace', 'select', 'default');
      const stateFiles = [
        'terraform.tfstate',
        'terraform.tfstate.d/staging/terraform.tfstate',
        '.terraform/environment',
      ];
      const atFirstBackup = new Map<string, Buffer>();
      for (const rel of stateFiles) atFirstBackup.set(rel, await readFile(path.join(dir, rel)));
      const first = await cli(['terraform', 'backup', '--dir', dir, '--json']);
      assert.equal(first.code, 0, first.stderr);
      const [def, staging] = first.json.workspaces;
      assert.equal(def.serial, 1);
      assert.match(def.lineage, /^[0-9a-f-]{36}$/);
      assert.equal(staging.workspace, 'staging');

      tofu(dir, 'apply', '-auto-approve', '-input=false', '-var', 'release=two');
      const second = await cli(['terraform', 'backup', '--dir', dir, '--json']);
      assert.equal(second.json.workspaces[0].serial, 2);
      assert.equal(second.json.workspaces[0].lineage, def.lineage);

      const copy = path.join(work.path, `tofu-copy-${n}`);
      assert.equal((await cli(['terraform', 'restore', first.json.id, '--target', copy])).code, 0);
      for (const [rel, bytes] of atFirstBackup)
        assert.deepEqual(await readFile(path.join(copy, rel)), bytes, rel);

      // Putting the first capture (serial 1) back over serial 2 is refused, then forced; validate sees it.
      const refused = await cli([
        'terraform',
        'restore',
        first.json.id,
        '--target',
        dir,
        '--workspace',
        'default',
      ]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /serial 1 in the snapshot is lower than serial 2/);
      assert.equal(
        (
          await cli([
            'terraform',
            'restore',
            first.json.id,
            '--target',
            dir,
            '--workspace',
            'default',
            '--force',
          ])
        ).code,
        0,
      );
      tofu(dir, 'plan', '-input=false', '-var', 'release=two'); // OpenTofu reads the restored state
      assert.equal((await cli(['terraform', 'backup', '--dir', dir])).code, 0);
      const v = await cli(['validate', '--type', 'terraform', '--json']);
      assert.equal(v.code, 1);
      assert.match(v.stderr, /workspace default: serial went backwards from 2 .* to 1/);
    });
  },
);
