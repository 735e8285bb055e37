// The browser IDE (vscode-web) of a Gitspace: code-server run as the developer's user on the
// checkout, with the devcontainer's settings and, on first boot, its extensions (with a dev
// container it runs in there instead: container-ide.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CODE_SERVER_VERSION, type AgentConfig } from '../api/agent.ts';
import { CodeServer, codeServerBinary } from './code-server.ts';
import type { DevcontainerPlan } from './devcontainer.ts';
import { StepError } from './git.ts';
import { log } from './log.ts';
import type { DevUser } from './user.ts';

export interface BrowserIdeOptions {
  config: AgentConfig;
  /** The agent's directory: the socket's place when there is no separate user. */
  root: string;
  checkout: string;
  user: DevUser;
  env: NodeJS.ProcessEnv;
  plan: DevcontainerPlan;
  installExtensions: boolean;
  /** Told before code-server starts, so health reports them even if it then fails to. */
  onExtensionsFailed: (failed: { id: string; error: string }[]) => void;
}

/** Starts code-server and resolves once it serves the workbench. */
export async function startBrowserIde(o: BrowserIdeOptions): Promise<CodeServer> {
  const bin = codeServerBinary();
  if (!bin) throw new StepError(`the vscode-web IDE needs code-server (${CODE_SERVER_VERSION}): none on PATH and GITSPACES_CODE_SERVER is not set`);
  const dataDir = join(o.config.home, '.local', 'share', 'code-server');
  const ide = new CodeServer({
    bin,
    dataDir,
    // A socket only the user (and the agent, root) can open; a unix socket path must stay short.
    socket: join(o.user.runtimeDir(o.root), 'ide.sock'),
    folder: existsSync(o.checkout) ? o.checkout : o.config.home,
    env: o.env,
    log,
    wrap: (argv) => o.user.wrap(argv),
  });
  ide.applySettings(o.plan.vscode.settings);
  await o.user.own(dataDir);
  if (o.installExtensions && o.plan.vscode.extensions.length) o.onExtensionsFailed(await ide.installExtensions(o.plan.vscode.extensions));
  await ide.start();
  return ide;
}
