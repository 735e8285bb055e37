// Starting the agent from its directory (`--root`): a claimed VM runs as its Gitspace from
// agent.json; a new one serves its boot facts and waits for its claim (unclaimed.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BOOT_FAILURE_PREFIX, type BootFacts } from '../api/agent.ts';
import { Agent } from './agent.ts';
import { prePull } from './pre-pull.ts';
import { UnclaimedAgent } from './unclaimed.ts';

/**
 * The agent cannot run (its port is taken, its files unreadable): one line in the startup script's
 * failure format on the console, which the operator reads when the agent does not answer, so the
 * Gitspace fails with this reason instead of waiting for an agent that is not there.
 */
function exitFailed(e: unknown): never {
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 400);
  process.stdout.write(`${BOOT_FAILURE_PREFIX} reason=AgentExited: the agent stopped: ${message}\n`);
  process.exit(1);
}

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
  try {
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
      // The claim is answered already; a Gitspace agent that cannot start ends the process.
      await agent.start().catch(exitFailed);
    });
    current = unclaimed;
    await unclaimed.start();
    void prePull(facts.pool?.images);
  } catch (e) {
    exitFailed(e);
  }
}
