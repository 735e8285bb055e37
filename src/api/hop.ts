// The hop token: what the gateway presents to a Gitspace's agent and the runner hands the agent
// in its claim. Both derive it from the Gitspace's UID under one key, kept in one Secret in the
// operator's namespace — so the gateway needs to read that Secret only, never a tenant's, and the
// key is not the enrolment key (a gateway that leaks it cannot claim VMs).
import { createHmac } from 'node:crypto';

/** The Secret (in the release namespace) holding the hop key; the operator creates it once. */
export const HOP_KEY_SECRET = 'gitspaces-hop-key';
export const HOP_KEY_FIELD = 'key';

export function hopToken(key: string, gitspaceUID: string): string {
  return createHmac('sha256', key).update(`gitspaces-hop\0${gitspaceUID}`).digest('base64url');
}
