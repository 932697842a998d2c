/** Every tool `npm test` installs. Each entry lives in its own module beside this one. */
import type { Tool } from './toolbox.ts';
import { ferretdb } from './ferretdb.ts';
import { etcdTool, kubeApiserverTool, kubeCrdsTool } from './kube.ts';
import { versitygw } from './versitygw.ts';
import { promtool } from './promtool.ts';
import { chromium } from './chromium.ts';
import { helm, monitoringCrdsTool } from './helm.ts';

export const ALL_TOOLS: Tool[] = [ferretdb, versitygw, etcdTool, kubeApiserverTool, kubeCrdsTool, promtool, chromium, helm, monitoringCrdsTool];
