// Forwarded ports: the ports a Gitspace publishes, and passing a request for one of them (named by
// the gateway in PORT_HEADER) to that port on the VM's loopback, or in the dev container.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PORT_HEADER, type AgentConfig } from '../api/agent.ts';
import type { Activity } from './activity.ts';
import type { DevcontainerPlan } from './devcontainer.ts';
import type { Dial } from './dial.ts';
import { endUpgrade, forward, forwardUpgrade } from './forward.ts';

/** The ports this Gitspace publishes: devcontainer forwardPorts and spec.ports. */
export function publishedPorts(plan: DevcontainerPlan, config: AgentConfig): number[] {
  return [...new Set([...plan.forwardPorts, ...config.ports.map((p) => p.port)])];
}

/** The port a forwarded-port request names, if the Gitspace declares it. */
function declaredPort(req: IncomingMessage, ports: number[]): number | undefined {
  const raw = req.headers[PORT_HEADER];
  const port = typeof raw === 'string' ? Number(raw) : NaN;
  return ports.includes(port) ? port : undefined;
}

export function forwardPort(req: IncomingMessage, res: ServerResponse, ports: number[], activity: Activity, dial: Dial): void {
  const port = declaredPort(req, ports);
  if (port === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('this port is not forwarded\n');
    return;
  }
  activity.touchBy(req);
  forward({ dial: () => dial(port) }, req, res, `port ${String(port)}`);
}

export function forwardPortUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ports: number[], activity: Activity, dial: Dial): void {
  const port = declaredPort(req, ports);
  if (port === undefined) endUpgrade(socket, '404 Not Found');
  else forwardUpgrade({ dial: () => dial(port) }, req, socket, head, () => { activity.touchBy(req); });
}
