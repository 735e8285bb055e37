// What the agent and the pool agent share about their process: JSON log lines on stderr, and the
// listen address an image may pin with GITSPACES_LISTEN_ADDRESS (e.g. its private IP only).
export function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), msg, ...fields }) + '\n');
}

export function listenAddress(configured: string): string {
  return process.env.GITSPACES_LISTEN_ADDRESS || configured;
}
