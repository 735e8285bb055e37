// The infra's certificate check (GatewayReady) on certificates made by openssl, with a moved clock:
// expiry and not-yet-valid need time to pass, which the integration test cannot wait for.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GitspaceInfra } from '../../src/api/index.ts';
import { checkCertificate } from '../../src/controllers/infra/gateway-check.ts';
import { KubeError, type KubeClient } from '../../src/runtime/kube.ts';

describe('GatewayReady: the certificate check', () => {
  let dir: string;
  let pem: string;
  const infra = (tls = true) => ({ metadata: { name: 'i' }, spec: { gateway: { domain: 'gs.example.com', ...(tls ? { tlsSecretRef: { name: 'wild' } } : {}) } } }) as unknown as GitspaceInfra;
  const secrets = new Map<string, { type: string; data: Record<string, string> }>();
  const client = {
    get: (_r: unknown, ns: string, name: string) => {
      const s = secrets.get(`${ns}/${name}`);
      return s ? Promise.resolve(s) : Promise.reject(new KubeError(404, 'NotFound', 'not found', {}));
    },
  } as unknown as KubeClient;
  const check = (now: number, i = infra()) => checkCertificate({ client, namespace: 'gitspaces', now: () => now }, i);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gitspaces-cert-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=gs', '-addext', 'subjectAltName=DNS:*.gs.example.com', '-days', '10', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
    pem = readFileSync(join(dir, 'c'), 'utf8');
    secrets.set('gitspaces/wild', { type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(pem).toString('base64') } });
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes a valid wildcard now, and says how long it has left', async () => {
    const v = await check(Date.now());
    expect(v.ok).to.equal(true);
    expect(v.ok && v.note).to.match(/^certificate for \*\.gs\.example\.com valid until \S+ \((9|10) days\)$/);
  });

  it('fails it once expired, and before it is valid', async () => {
    expect(await check(Date.now() + 11 * 86_400_000)).to.deep.include({ ok: false, reason: 'CertificateExpired' });
    expect(await check(Date.now() - 86_400_000)).to.deep.include({ ok: false, reason: 'CertificateNotYetValid' });
  });

  it('refuses a Secret that is not kubernetes.io/tls, a missing one, and garbage', async () => {
    secrets.set('gitspaces/wild', { type: 'Opaque', data: { 'tls.crt': Buffer.from(pem).toString('base64') } });
    expect(await check(Date.now())).to.deep.include({ ok: false, reason: 'CertificateInvalid' });
    secrets.set('gitspaces/wild', { type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString('base64') } });
    expect(await check(Date.now())).to.deep.include({ ok: false, reason: 'CertificateInvalid' });
    secrets.delete('gitspaces/wild');
    expect(await check(Date.now())).to.deep.equal({ ok: false, reason: 'CertificateNotFound', message: 'spec.gateway.tlsSecretRef: Secret gitspaces/wild not found' });
    secrets.set('gitspaces/wild', { type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(pem).toString('base64') } });
  });

  it('has nothing to check without tlsSecretRef (plain HTTP)', async () => {
    expect(await check(Date.now(), infra(false))).to.deep.equal({ ok: true, note: 'plain HTTP (no tlsSecretRef: development only)' });
  });
});
