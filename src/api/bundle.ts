// The agent bundle: what a VM downloads from the gateway before it has any credentials (Node 24,
// the compiled agent and its production dependencies, one tarball per CPU architecture), and
// where. `npm run bundle:agent` builds it (scripts/bundle-agent.ts); the gateway serves it
// (src/gateway/agent-bundles.ts). Pure: no I/O.

/** Where the gateway serves bundles, on any host and without authentication. */
export const AGENT_BUNDLE_PATH = '/.gitspaces/agent';

/** Node's names for the CPU architectures bundles are built for (`process.arch`). */
export type BundleArch = 'x64' | 'arm64';

export const BUNDLE_ARCHES: readonly BundleArch[] = ['x64', 'arm64'];

/** `gitspaces-agent-<version>-linux-<arch>.tar.gz`; it unpacks to `gitspaces-agent-<version>/`. */
export function bundleFileName(version: string, arch: BundleArch): string {
  return `gitspaces-agent-${version}-linux-${arch}.tar.gz`;
}

/** The top-level directory inside a bundle tarball. */
export function bundleDirName(version: string): string {
  return `gitspaces-agent-${version}`;
}

/** The bundles of one version: `manifest.json` next to the tarballs. */
export interface BundleManifest {
  version: string;
  files: Partial<Record<BundleArch, { file: string; sha256: string; size: number }>>;
}

/**
 * `<base>/<version>/<file>`, where base is the gateway's URL with AGENT_BUNDLE_PATH, e.g.
 * `https://gw.example.com/.gitspaces/agent/0.1.0/gitspaces-agent-0.1.0-linux-x64.tar.gz`.
 */
export function bundleURL(base: string, version: string, arch: BundleArch): string {
  return `${base.replace(/\/+$/, '')}/${version}/${bundleFileName(version, arch)}`;
}
