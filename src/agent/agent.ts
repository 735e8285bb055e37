// The agent on a Gitspace VM: one HTTP port behind the per-Gitspace secret (http-api.ts) and SSH,
// while it walks the set-up steps (setup.ts). This wires them: config, activity, steps, servers.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { dirname } from 'node:path';
import type { AgentConfig, AgentHealth } from '../api/agent.ts';
import { Activity } from './activity.ts';
import { HttpApi } from './http-api.ts';
import { listenAddress, log } from './log.ts';
import { Setup } from './setup.ts';

export class Agent {
  private readonly config: AgentConfig;
  private readonly activity = new Activity();
  private readonly setup: Setup;
  private readonly api: HttpApi;
  private http: Server | undefined;

  constructor(config: AgentConfig, root: string) {
    this.config = config;
    this.setup = new Setup(config, root, this.activity);
    this.api = new HttpApi({
      config,
      activity: this.activity,
      health: () => this.health(),
      ideSocket: () => this.setup.ideSocket(),
      ideAttached: () => {
        this.setup.ideAttached();
      },
      forwardPorts: () => this.setup.forwardPorts(),
      dialPort: (port) => this.setup.dialPort(port),
      rebuild: (token) => this.setup.rebuild(token),
    });
  }

  /**
   * Reads the config; GITSPACES_LISTEN_ADDRESS and GITSPACES_HOME override where it listens and
   * the user's home (an image that binds the agent to its private IP only, or a test host).
   */
  static fromFile(path: string): Agent {
    return Agent.fromConfig(JSON.parse(readFileSync(path, 'utf8')) as AgentConfig, dirname(path));
  }

  static fromConfig(config: AgentConfig, root: string): Agent {
    const home = process.env.GITSPACES_HOME;
    config.listen = { ...config.listen, address: listenAddress(config.listen.address) };
    if (home) config.home = home;
    return new Agent(config, root);
  }

  health(): AgentHealth {
    const { setup } = this;
    return {
      state: setup.state,
      ...(this.config.instance ? { instance: this.config.instance } : {}),
      restart: setup.restart,
      steps: setup.steps,
      ide: setup.ideStatus(),
      checkout: setup.checkout,
      forwardPorts: setup.forwardPorts(),
      devcontainer: setup.devcontainerStatus(),
      lastActivityTime: this.activity.lastActivityTime,
      lastActivitySource: this.activity.lastActivitySource,
      ...(setup.sshHostKey() ? { sshHostKey: setup.sshHostKey() } : {}),
    };
  }

  async start(): Promise<void> {
    const { address, httpPort, sshPort } = this.config.listen;
    this.http = createServer((req, res) => {
      this.api.handle(req, res);
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.api.upgrade(req, socket, head);
    });
    await new Promise<void>((resolve, reject) => {
      this.http?.once('error', reject);
      this.http?.listen(httpPort, address, resolve);
    });
    log('agent listening', { address, httpPort, sshPort, restart: this.setup.restart });
    await this.setup.run();
  }

  async stop(): Promise<void> {
    this.setup.stop();
    this.api.close();
    await new Promise<void>((r) => {
      if (!this.http) {
        r();
        return;
      }
      this.http.closeAllConnections();
      this.http.close(() => {
        r();
      });
    });
  }
}
