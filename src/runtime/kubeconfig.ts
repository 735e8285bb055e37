// Where the API server is and how to authenticate: in-cluster service account, or a kubeconfig
// (token, token file, client certificate, exec plugin such as gke-gcloud-auth-plugin or
// `aws eks get-token`). Our own small loader because @kubernetes/client-node costs ~90 MB of
// resident memory just to import, a third of the operator's budget.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

export interface ClusterAccess {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecureSkipTLSVerify?: boolean;
  /** Current bearer token, if any (re-read or re-run as it expires). */
  token?: () => string | undefined;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface NamedCluster { name: string; cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean } }
interface ExecConfig { command: string; args?: string[]; env?: { name: string; value: string }[]; apiVersion?: string }
interface NamedUser { name: string; user: { token?: string; tokenFile?: string; 'client-certificate'?: string; 'client-certificate-data'?: string; 'client-key'?: string; 'client-key-data'?: string; exec?: ExecConfig } }
interface NamedContext { name: string; context: { cluster: string; user: string; namespace?: string } }
interface KubeconfigFile { clusters?: NamedCluster[]; users?: NamedUser[]; contexts?: NamedContext[]; 'current-context'?: string }

/** Re-reads a file at most once a minute (projected service-account tokens rotate). */
function fileToken(path: string): () => string {
  let cached = '';
  let at = 0;
  return () => {
    if (Date.now() - at > 60_000) {
      cached = readFileSync(path, 'utf8').trim();
      at = Date.now();
    }
    return cached;
  };
}

/** Runs a client-go exec credential plugin, caching its token until shortly before it expires. */
function execToken(exec: ExecConfig, baseDir: string): () => string | undefined {
  let cached: { token: string; until: number } | undefined;
  return () => {
    if (cached && Date.now() < cached.until) return cached.token;
    const env = { ...process.env, ...Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value])) };
    const cmd = exec.command.includes('/') && !isAbsolute(exec.command) ? join(baseDir, exec.command) : exec.command;
    const out = execFileSync(cmd, exec.args ?? [], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const cred = JSON.parse(out) as { status?: { token?: string; expirationTimestamp?: string } };
    const token = cred.status?.token;
    if (!token) return undefined;
    const exp = cred.status?.expirationTimestamp ? Date.parse(cred.status.expirationTimestamp) - 60_000 : Date.now() + 10 * 60_000;
    cached = { token, until: exp };
    return token;
  };
}

export function fromKubeconfigText(text: string, baseDir = process.cwd(), context?: string): ClusterAccess {
  const kc = parse(text) as KubeconfigFile;
  const ctxName = context ?? kc['current-context'];
  const ctx = kc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`kubeconfig: context "${ctxName ?? ''}" not found`);
  const cluster = kc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster) throw new Error(`kubeconfig: cluster "${ctx.cluster}" not found`);
  const user = kc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  const file = (p: string) => readFileSync(isAbsolute(p) ? p : join(baseDir, p), 'utf8');
  const data = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
  const access: ClusterAccess = { server: cluster.server };
  const ca = cluster['certificate-authority-data'] ? data(cluster['certificate-authority-data']) : cluster['certificate-authority'] ? file(cluster['certificate-authority']) : undefined;
  if (ca) access.ca = ca;
  if (cluster['insecure-skip-tls-verify']) access.insecureSkipTLSVerify = true;
  const cert = user['client-certificate-data'] ? data(user['client-certificate-data']) : user['client-certificate'] ? file(user['client-certificate']) : undefined;
  const key = user['client-key-data'] ? data(user['client-key-data']) : user['client-key'] ? file(user['client-key']) : undefined;
  if (cert) access.cert = cert;
  if (key) access.key = key;
  if (user.token) {
    const t = user.token;
    access.token = () => t;
  } else if (user.tokenFile) access.token = fileToken(user.tokenFile);
  else if (user.exec) access.token = execToken(user.exec, baseDir);
  return access;
}

export function inCluster(): ClusterAccess | undefined {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !existsSync(join(SA_DIR, 'token'))) return undefined;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(SA_DIR, 'ca.crt'), 'utf8'),
    token: fileToken(join(SA_DIR, 'token')),
  };
}

/** $KUBECONFIG (first file), ~/.kube/config, or the in-cluster service account. */
export function loadDefault(): ClusterAccess {
  const paths = (process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const path = paths.find((p) => existsSync(p)) ?? (existsSync(join(homedir(), '.kube', 'config')) ? join(homedir(), '.kube', 'config') : undefined);
  if (path) return fromKubeconfigText(readFileSync(path, 'utf8'), dirname(path));
  const ic = inCluster();
  if (ic) return ic;
  throw new Error('no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, or run in a cluster');
}
