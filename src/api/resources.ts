// Where the kinds live on the API server (shaped like the runtime's Resource descriptor), and the
// names that tie the runner's objects to the gateway: shared by every component that reads them.
import { GITSPACE, GITSPACE_INFRA, GROUP, VERSION } from './constants.ts';

export const GITSPACES = { group: GROUP, version: VERSION, plural: GITSPACE.plural, namespaced: true } as const;
export const GITSPACE_INFRAS = { group: GROUP, version: VERSION, plural: GITSPACE_INFRA.plural, namespaced: false } as const;
export const SECRETS = { group: '', version: 'v1', plural: 'secrets', namespaced: true } as const;
export const NAMESPACES = { group: '', version: 'v1', plural: 'namespaces', namespaced: false } as const;

/**
 * The host a Gitspace is served at by the gateway: <name>--<namespace>.<domain>. A name starts
 * with a letter and has no `--` (the CRD says so), so the first `--` ends the name and a host that
 * starts with digits is always a port host: no two Gitspaces or ports share a host.
 */
export function gitspaceHost(name: string, namespace: string, domain: string): string {
  return `${name}--${namespace}.${domain}`;
}

/** How users reach `host` through the infra's gateway: its scheme, and its port when not the scheme's own. */
export function gatewayOrigin(gateway: { tlsSecretRef?: unknown; port?: number }, host: string): string {
  const { tlsSecretRef, port } = gateway;
  const scheme = tlsSecretRef ? 'https' : 'http';
  return `${scheme}://${host}${port && port !== (tlsSecretRef ? 443 : 80) ? `:${String(port)}` : ''}`;
}

/** A forwarded port's host: <port>--<name>--<namespace>.<domain>. */
export function portHost(port: number, name: string, namespace: string, domain: string): string {
  return `${String(port)}--${gitspaceHost(name, namespace, domain)}`;
}

/** Where the gateway keeps browser sessions (one ConfigMap each, in its own namespace; tokens sealed). */
export const CONFIG_MAPS = { group: '', version: 'v1', plural: 'configmaps', namespaced: true } as const;
export const SESSION_LABEL = 'gitspaces.dev/session';
export const SESSION_PREFIX = 'gitspaces-session-';
