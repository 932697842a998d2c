/** Connection options shared by every Kubernetes command (kubeconfig, --context, in-cluster). */
import type { KubeClient } from '../sources/kubernetes/client.ts';
import type { CommandContext, OptionSpec, OptionValues } from './command.ts';
import { str } from './command.ts';

export const KUBE_OPTIONS: Record<string, OptionSpec> = {
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    env: 'KUBECONFIG',
    description: 'kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster)',
  },
  context: {
    type: 'string',
    arg: 'NAME',
    env: 'LIFEBOAT_KUBE_CONTEXT',
    description: 'kubeconfig context to use',
  },
  'in-cluster': {
    type: 'boolean',
    env: 'LIFEBOAT_KUBE_IN_CLUSTER',
    description: "use the Pod's ServiceAccount",
  },
};

/** Loads the Kubernetes client only for a command that talks to a cluster (lazy-imports.test.ts). */
export async function kubeClient(ctx: CommandContext, values: OptionValues): Promise<KubeClient> {
  const { KubeClient } = await import('../sources/kubernetes/client.ts');
  return KubeClient.connect(
    {
      kubeconfig: str(values.kubeconfig)?.split(':')[0],
      context: str(values.context),
      inCluster: values['in-cluster'] === true,
    },
    ctx.env,
  );
}
