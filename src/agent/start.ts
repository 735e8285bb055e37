// Starting the agent from its directory (`--root`): a claimed VM runs as its Gitspace from
// agent.json; a new one serves its boot facts and waits for its claim (unclaimed.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BootFacts } from '../api/agent.ts';
import { Agent } from './agent.ts';
import { UnclaimedAgent } from './unclaimed.ts';

/**
 * Runs the agent from its directory: as its Gitspace when it has been claimed (agent.json), else
 * from its boot facts, waiting for the one claim that makes it a Gitspace's.
 */
export async function runAgent(root: string): Promise<void> {
  let current: { stop(): Promise<void> } | undefined;
  const shutdown = () => {
    void (current?.stop() ?? Promise.resolve()).then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  const configPath = join(root, 'agent.json');
  if (existsSync(configPath)) {
    const agent = Agent.fromFile(configPath);
    current = agent;
    await agent.start();
    return;
  }
  const facts = JSON.parse(readFileSync(join(root, 'boot.json'), 'utf8')) as BootFacts;
  const unclaimed = new UnclaimedAgent(facts, root, async (config) => {
    const agent = Agent.fromConfig(config, root);
    current = agent;
    await agent.start();
  });
  current = unclaimed;
  await unclaimed.start();
}
