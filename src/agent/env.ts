// The environment of everything run for the developer (shells, lifecycle commands, the IDE).
import type { AgentConfig } from '../api/agent.ts';

/** spec.env, then devcontainer env; `userName` is the developer's user once known. */
export function commandEnv(config: AgentConfig, userName: string | undefined, devcontainerEnv: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: config.home,
    USER: userName ?? process.env.USER ?? 'gitspace',
    LOGNAME: userName ?? process.env.USER ?? 'gitspace',
    LANG: 'C.UTF-8',
    SHELL: '/bin/bash',
    GITSPACE_NAME: config.gitspace.name,
    GITSPACE_NAMESPACE: config.gitspace.namespace,
    // The VM's container runtime, when it is not at the default socket, and its compose project name.
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    ...(process.env.COMPOSE_PROJECT_NAME ? { COMPOSE_PROJECT_NAME: process.env.COMPOSE_PROJECT_NAME } : {}),
  };
  for (const e of config.env) env[e.name] = e.value ?? '';
  Object.assign(env, devcontainerEnv);
  return env;
}
