// Names, routes and links derived from a Gitspace: pure functions, one place.
import type { Gitspace, GitspaceInfra, GitspaceStatus } from '../../api/index.ts';
import { LABELS, MANAGED_BY, repoDirName } from '../../api/index.ts';
import { gatewayOrigin, gitspaceHost, portHost } from '../../api/resources.ts';

/** Our labels for a Gitspace's VM: whose it is (the checks before every VM action read them). */
export function vmLabels(gs: Gitspace, infra: GitspaceInfra): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.infra]: infra.metadata.name ?? '',
    [LABELS.gitspaceUID]: gs.metadata.uid ?? '',
    [LABELS.gitspaceName]: gs.metadata.name ?? '',
    [LABELS.gitspaceNamespace]: gs.metadata.namespace ?? '',
  };
}

/** Deterministic instance name: the same Gitspace always maps to the same VM name. */
export function instanceName(gs: Gitspace): string {
  return `gs-${gs.metadata.uid ?? ''}`;
}

export function gatewayHost(gs: Gitspace, infra: GitspaceInfra): string {
  return gitspaceHost(gs.metadata.name ?? '', gs.metadata.namespace ?? '', infra.spec.gateway.domain);
}

/** The checkout path on the VM (the agent's home is the VM user's home). */
export function checkoutPath(gs: Gitspace, home: string): string {
  return `${home}/${repoDirName(gs.spec.repository.url)}`;
}

type RoutePort = NonNullable<NonNullable<GitspaceStatus['route']>['ports']>[number];

/**
 * The ports the gateway publishes: spec.ports, then the devcontainer's forwardPorts the agent
 * reported (private). A public port is served as shared unless the infra allows public ports.
 */
/** status.route.ports' maxItems in the schema. */
const MAX_ROUTE_PORTS = 64;

export function publishedPorts(gs: Gitspace, infra: GitspaceInfra, forwardPorts: number[] = []): RoutePort[] {
  const declared = gs.spec.ports ?? [];
  // forwardPorts come from the agent (the VM is its user's): only real port numbers, each once,
  // and no more than status.route.ports holds — else the status write is refused and the Gitspace sticks.
  const valid = [...new Set(forwardPorts)].filter((p) => Number.isInteger(p) && p > 0 && p < 65_536 && !declared.some((d) => d.port === p));
  const extra = valid.slice(0, Math.max(0, MAX_ROUTE_PORTS - declared.length)).map((port) => ({ port }));
  return [...declared, ...extra].map((p: { port: number; name?: string; visibility?: RoutePort['visibility']; protocol?: RoutePort['protocol'] }) => {
    const wanted = p.visibility ?? 'private';
    return {
      port: p.port,
      ...(p.name ? { name: p.name } : {}),
      visibility: wanted === 'public' && !infra.spec.gateway.allowPublicPorts ? 'shared' : wanted,
      protocol: p.protocol ?? 'http',
      host: portHost(p.port, gs.metadata.name ?? '', gs.metadata.namespace ?? '', infra.spec.gateway.domain),
    };
  });
}

/** Links the user clicks, by IDE (the shapes VS Code, Cursor, Windsurf and JetBrains Gateway open). */
export function userURLs(gs: Gitspace, infra: GitspaceInfra, checkout: string, ports: RoutePort[] = publishedPorts(gs, infra)): NonNullable<GitspaceStatus['urls']> {
  const host = gatewayHost(gs, infra);
  const alias = host; // the ssh config Host entry written by `gitspaces ssh-config`
  const ssh = `ssh -o ProxyCommand='gitspaces ssh %h' ${alias}`;
  const folder = encodeURIComponent(checkout);
  const ide = gs.spec.ide?.type ?? 'vscode-web';
  const byIDE: Record<string, string> = {
    'vscode-web': `${gatewayOrigin(infra.spec.gateway, host)}/?folder=${folder}`,
    vscode: `vscode://vscode-remote/ssh-remote+${alias}${checkout}`,
    cursor: `cursor://vscode-remote/ssh-remote+${alias}${checkout}`,
    windsurf: `windsurf://vscode-remote/ssh-remote+${alias}${checkout}`,
    jetbrains: `jetbrains-gateway://connect#type=ssh&deploy=true&host=${alias}&port=22&user=gitspace&projectPath=${folder}&productCode=${jetbrainsCode(gs.spec.ide?.product)}`,
    ssh,
  };
  const links: Record<string, string> = {};
  for (const p of ports) links[String(p.port)] = `${gatewayOrigin(infra.spec.gateway, p.host ?? '')}/`;
  return { ide: byIDE[ide] ?? byIDE['vscode-web'], ssh, ...(Object.keys(links).length ? { ports: links } : {}) };
}

function jetbrainsCode(product: string | undefined): string {
  const codes: Record<string, string> = { intellij: 'IU', pycharm: 'PY', goland: 'GO', webstorm: 'WS', clion: 'CL', phpstorm: 'PS', rubymine: 'RM', rider: 'RD' };
  return codes[product ?? ''] ?? 'IU';
}

export function route(gs: Gitspace, infra: GitspaceInfra, upstream: string | undefined, ports: RoutePort[] = publishedPorts(gs, infra)): NonNullable<GitspaceStatus['route']> {
  return {
    host: gatewayHost(gs, infra),
    path: `/gitspaces/${gs.metadata.namespace ?? ''}/${gs.metadata.name ?? ''}/`,
    ...(upstream ? { upstream } : {}),
    ...(ports.length ? { ports } : {}),
  };
}

export { parseDuration } from '../../api/index.ts';
