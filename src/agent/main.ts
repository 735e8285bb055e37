// The agent's own entry point: what the agent bundle runs on a VM (`gitspaces-agent --root DIR`),
// without the rest of the CLI, so the bundle carries only the agent and its dependencies.
import { runAgent } from './start.ts';

const argv = process.argv.slice(2);
const at = argv.indexOf('--root');
const root = at >= 0 ? argv[at + 1] : process.env.GITSPACES_ROOT;
await runAgent(root || '/var/lib/gitspaces');
