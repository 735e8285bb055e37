// GatewayReady, observed rather than assumed: the certificate the infra names (present, a
// kubernetes.io/tls Secret, valid now, covering the infra's hosts) and the gateway's own /readyz
// (where the chart says the gateway is). Each check is bounded: a Secret read and one small GET.
import { X509Certificate } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { GitspaceInfra } from '../../api/index.ts';
import type { ConditionInput } from '../../runtime/conditions.ts';
import { isNotFound, type KubeClient } from '../../runtime/kube.ts';
import { SECRETS } from '../resources.ts';
import { secretValue, type Secret } from '../token-secret.ts';

export interface GatewayCheckDeps {
  client: KubeClient;
  /** Where a tlsSecretRef without a namespace points (the operator's namespace). */
  namespace: string;
  /** The gateway's base URL inside the cluster (its Service); unobserved when unset. */
  gatewayURL?: string;
  now?: () => number;
}

const READYZ_TIMEOUT_MS = 3_000;
const DAY_MS = 86_400_000;

type Verdict = { ok: true; note: string } | { ok: false; reason: string; message: string };

/** The certificate check alone (pure apart from the Secret read). */
export async function checkCertificate(d: GatewayCheckDeps, infra: GitspaceInfra): Promise<Verdict> {
  const ref = infra.spec.gateway.tlsSecretRef;
  const domain = infra.spec.gateway.domain;
  if (!ref) return { ok: true, note: 'plain HTTP (no tlsSecretRef: development only)' };
  const ns = ref.namespace ?? d.namespace;
  let s: Secret;
  try {
    s = await d.client.get<Secret>(SECRETS, ns, ref.name);
  } catch (e) {
    if (isNotFound(e)) return { ok: false, reason: 'CertificateNotFound', message: `spec.gateway.tlsSecretRef: Secret ${ns}/${ref.name} not found` };
    throw e;
  }
  const pem = secretValue(s, 'tls.crt');
  if (s.type !== 'kubernetes.io/tls' || !pem) return { ok: false, reason: 'CertificateInvalid', message: `spec.gateway.tlsSecretRef: Secret ${ns}/${ref.name} is not a kubernetes.io/tls Secret with tls.crt` };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (e) {
    return { ok: false, reason: 'CertificateInvalid', message: `spec.gateway.tlsSecretRef: ${ns}/${ref.name} tls.crt does not parse: ${(e as Error).message}` };
  }
  const now = (d.now ?? Date.now)();
  const until = Date.parse(cert.validTo);
  if (now < Date.parse(cert.validFrom)) return { ok: false, reason: 'CertificateNotYetValid', message: `the certificate in ${ns}/${ref.name} is valid from ${cert.validFrom}` };
  if (now > until) return { ok: false, reason: 'CertificateExpired', message: `the certificate in ${ns}/${ref.name} expired ${cert.validTo}` };
  // Any Gitspace host: one label under the domain (a wildcard *.<domain> covers them all).
  if (!cert.checkHost(`name--namespace.${domain}`)) return { ok: false, reason: 'CertificateMismatch', message: `the certificate in ${ns}/${ref.name} does not cover *.${domain} (subject alternative names: ${cert.subjectAltName ?? 'none'})` };
  const days = Math.floor((until - now) / DAY_MS);
  return { ok: true, note: `certificate for *.${domain} valid until ${new Date(until).toISOString()} (${String(days)} days)` };
}

/**
 * GET <url>/readyz. Over https the certificate is not verified: the gateway's certificate names
 * the users' domain, not its Service, and this request carries no credential and reads one status.
 */
function checkReadyz(url: string): Promise<Verdict> {
  const u = new URL('/readyz', url);
  const get = u.protocol === 'https:' ? httpsGet : httpGet;
  return new Promise((resolve) => {
    const req = get(u, { timeout: READYZ_TIMEOUT_MS, rejectUnauthorized: false }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(status === 200 ? { ok: true, note: `the gateway at ${url} is ready` } : { ok: false, reason: 'GatewayNotReady', message: `the gateway at ${url} answered /readyz with ${String(status)}` });
    });
    const fail = (why: string) => {
      req.destroy();
      resolve({ ok: false, reason: 'GatewayUnreachable', message: `the gateway at ${url} did not answer /readyz: ${why}` });
    };
    req.on('timeout', () => { fail(`no answer in ${String(READYZ_TIMEOUT_MS)} ms`); });
    req.on('error', (e) => { fail(e.message); });
  });
}

export async function gatewayCondition(d: GatewayCheckDeps, infra: GitspaceInfra): Promise<ConditionInput> {
  const cert = await checkCertificate(d, infra);
  if (!cert.ok) return { type: 'GatewayReady', status: 'False', reason: cert.reason, message: cert.message };
  if (!d.gatewayURL) return { type: 'GatewayReady', status: 'Unknown', reason: 'NotObserved', message: `${cert.note}; the gateway itself is not observed (the operator runs without --gateway-url)` };
  const ready = await checkReadyz(d.gatewayURL);
  if (!ready.ok) return { type: 'GatewayReady', status: 'False', reason: ready.reason, message: ready.message };
  return { type: 'GatewayReady', status: 'True', reason: 'Ready', message: `${ready.note}; ${cert.note}` };
}
