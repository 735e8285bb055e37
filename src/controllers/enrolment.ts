// Enrolment: how a new VM (cold start or warm pool) gets its Gitspace's configuration without any
// secret in instance metadata. At create, the VM gets a random nonce as a label and, in its boot
// facts, the SHA-256 of its one-time token HMAC(operator key, name, nonce). To claim it, the
// operator derives the token again (from the key, which never leaves the operator's namespace,
// and the labels the cloud reports) and POSTs the configuration with it; the agent checks the
// hash, takes the claim once and forgets the hash. Nothing is remembered between the two, so a
// restarted operator claims what an earlier one created. A user who gets root on one VM learns
// that VM's spent token only: every other VM's token needs the key.
// The hop token the claim carries (what the gateway presents to the agent) is derived from the
// Gitspace's UID under a second key (src/api/hop.ts), which the gateway may read and this one not.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { AGENT_BUNDLE_PATH, AGENT_HTTP_PORT, AGENT_SSH_PORT, HOP_KEY_FIELD, HOP_KEY_SECRET, hopToken, LABELS, type AgentBundleRef, type BootFacts, type Gitspace, type GitspaceInfra } from '../api/index.ts';
import { gatewayOrigin } from '../api/resources.ts';
import type { Instance } from '../providers/types.ts';
import type { Informer } from '../runtime/informer.ts';
import type { KubeClient } from '../runtime/kube.ts';
import { OperatorKey, type Secret } from './token-secret.ts';

export const ENROLMENT_SECRET = 'gitspaces-enrolment';
const KEY = 'key';

export interface EnrolmentDeps {
  client: KubeClient;
  secrets: Informer<Secret>;
  /** The operator's namespace, where the key Secrets live. */
  namespace: string;
  /** The developer's home on VMs. */
  vmHome?: string;
  /** The agent bundles the operator carries (version and sha256 per architecture), if any. */
  bundle?: { version: string; sha256: AgentBundleRef['sha256'] };
}

export function enrolmentToken(key: string, instance: string, nonce: string): string {
  return createHmac('sha256', key).update(`gitspaces-enrolment\0${instance}\0${nonce}`).digest('base64url');
}

export function sha256hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Where VMs of this infra download the agent bundle from (a mirror, or the infra's gateway). */
export function bundleBaseURL(infra: GitspaceInfra): string {
  const configured = infra.spec.vm?.agentBundleBaseURL;
  if (configured) return configured;
  return `${gatewayOrigin(infra.spec.gateway, infra.spec.gateway.domain)}${AGENT_BUNDLE_PATH}`;
}

export class Enrolment {
  private readonly d: EnrolmentDeps;
  private readonly enrolmentKey: OperatorKey;
  private readonly hopKey: OperatorKey;

  constructor(d: EnrolmentDeps) {
    this.d = d;
    const { client, secrets, namespace } = d;
    this.enrolmentKey = new OperatorKey({ client, secrets, namespace, name: ENROLMENT_SECRET, field: KEY });
    this.hopKey = new OperatorKey({ client, secrets, namespace, name: HOP_KEY_SECRET, field: HOP_KEY_FIELD });
  }

  private secretKey(): Promise<string> {
    return this.enrolmentKey.value();
  }

  /** The token the gateway will present to this Gitspace's agent (handed over in the claim). */
  async hopToken(gs: Gitspace): Promise<string> {
    if (!gs.metadata.uid) throw new Error('a Gitspace without a UID has no hop token');
    return hopToken(await this.hopKey.value(), gs.metadata.uid);
  }

  /** Boot facts and the enrolment label for a new instance of this infra. */
  async boot(infra: GitspaceInfra, instance: string, pool?: BootFacts['pool']): Promise<{ facts: BootFacts; labels: Record<string, string> }> {
    const nonce = randomBytes(8).toString('hex');
    const token = enrolmentToken(await this.secretKey(), instance, nonce);
    const b = this.d.bundle;
    const facts: BootFacts = {
      instance,
      enrolmentSha256: sha256hex(token),
      listen: { address: '0.0.0.0', httpPort: AGENT_HTTP_PORT, sshPort: AGENT_SSH_PORT },
      user: { name: 'gitspace', home: this.d.vmHome ?? '/home/gitspace', sudo: infra.spec.vm?.sudo ?? true },
      ...(b ? { bundle: { version: b.version, baseURL: bundleBaseURL(infra), sha256: b.sha256 } } : {}),
      ...(infra.spec.vm?.installDocker ? { installDocker: true } : {}),
      ...(pool ? { pool } : {}),
    };
    return { facts, labels: { [LABELS.enrolment]: nonce } };
  }

  /** The token that claims this instance, or undefined when its labels carry no nonce. */
  async token(inst: Instance): Promise<string | undefined> {
    const nonce = inst.labels[LABELS.enrolment];
    return nonce ? enrolmentToken(await this.secretKey(), inst.name, nonce) : undefined;
  }
}
