// devcontainer.json as the agent reads it, and the docker argv and override config it makes of it.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execIn, overrideConfig, shellJoin } from '../../src/agent/container.ts';
import { planDevcontainer, stripJsonc } from '../../src/agent/devcontainer.ts';

describe('devcontainer.json', () => {
  it('reads comments and trailing commas, but keeps them inside strings', () => {
    const text = `{
      // line comment
      "a": "http://example.com/*not a comment*/", /* block */
      "b": [1, 2,],
    }`;
    expect(JSON.parse(stripJsonc(text))).to.deep.equal({ a: 'http://example.com/*not a comment*/', b: [1, 2] });
  });

  it('applies env, lifecycle commands and forwarded ports, and lists what needs a container runtime', () => {
    const plan = planDevcontainer(`{
      "image": "mcr.microsoft.com/devcontainers/base",
      "features": { "ghcr.io/devcontainers/features/node:1": {} },
      "containerEnv": { "A": "1" },
      "remoteEnv": { "B": "2" },
      "initializeCommand": ["git", "status"],
      "onCreateCommand": "make deps",
      "postCreateCommand": "npm ci",
      "postAttachCommand": "echo hi",
      "postStartCommand": { "server": ["npm", "start"], "watch": "npm run watch" },
      "forwardPorts": [3000, "db:5432", 70000],
      "customizations": { "vscode": { "extensions": ["dbaeumer.vscode-eslint"], "settings": { "editor.tabSize": 2 } } },
      "remoteUser": "node"
    }`);
    expect(plan.env).to.deep.equal({ A: '1', B: '2' });
    expect(plan.lifecycle).to.deep.equal({
      initializeCommand: [{ argv: ['git', 'status'], text: 'git status' }],
      onCreateCommand: [{ argv: ['bash', '-lc', 'make deps'], text: 'make deps' }],
      updateContentCommand: [],
      postCreateCommand: [{ argv: ['bash', '-lc', 'npm ci'], text: 'npm ci' }],
      postStartCommand: [{ argv: ['npm', 'start'], text: 'npm start' }, { argv: ['bash', '-lc', 'npm run watch'], text: 'npm run watch' }],
      postAttachCommand: [{ argv: ['bash', '-lc', 'echo hi'], text: 'echo hi' }],
    });
    expect(plan.forwardPorts).to.deep.equal([3000, 5432]);
    expect(plan.portServices).to.deep.equal({ 5432: 'db' });
    expect(plan.remoteUser).to.equal('node');
    expect(plan.vscode).to.deep.equal({ extensions: ['dbaeumer.vscode-eslint'], settings: { 'editor.tabSize': 2 } });
    expect(plan.notApplied).to.deep.equal(['image', 'features', 'remoteUser']);
  });

  it('is empty without a file', () => {
    const none = { initializeCommand: [], onCreateCommand: [], updateContentCommand: [], postCreateCommand: [], postStartCommand: [], postAttachCommand: [] };
    expect(planDevcontainer(undefined)).to.deep.equal({ env: {}, lifecycle: none, forwardPorts: [], portServices: {}, vscode: { extensions: [], settings: {} }, notApplied: [] });
  });

  it('forwards appPort like forwardPorts, each port once, and names compose services only when they are valid names', () => {
    const plan = planDevcontainer(`{
      "forwardPorts": [8080, "localhost:9000", "db:5432", "bad name:6000", "db:99999"],
      "appPort": [8080, "3001:3000", 4000]
    }`);
    expect(plan.forwardPorts).to.deep.equal([8080, 9000, 5432, 3000, 4000]);
    expect(plan.portServices).to.deep.equal({ 5432: 'db' });
    expect(planDevcontainer('{ "appPort": 7000 }').forwardPorts).to.deep.equal([7000]);
  });
});

describe('dev container commands', () => {
  const c = { id: 'abc123', remoteUser: 'dev', workspaceFolder: '/workspaces/my repo' };

  it('runs a command in the container as its user in its workspace, with env, a terminal when asked', () => {
    expect(execIn(c, ['bash', '-lc', 'make'], { env: { A: '1 2' } })).to.deep.equal(['docker', 'exec', '-i', '-u', 'dev', '-w', '/workspaces/my repo', '-e', 'A=1 2', 'abc123', 'bash', '-lc', 'make']);
    expect(execIn(c, ['bash', '-l'], { tty: true }).slice(0, 4)).to.deep.equal(['docker', 'exec', '-i', '-t']);
  });

  it('quotes argv for a shell so that it comes back the same', () => {
    const argv = ['docker', 'exec', '-e', "A=it's here", '-w', '/a b', 'x', 'bash', '-c', 'echo "$HOME"; exit 3'];
    const out = execFileSync('sh', ['-c', `for a in ${shellJoin(argv)}; do printf '%s\\n' "$a"; done`], { encoding: 'utf8' });
    expect(out.trimEnd().split('\n')).to.deep.equal(argv);
  });

  it('adds our mounts to devcontainer.json next to it, keeps the user\'s, and keeps the file out of git', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-override-'));
    try {
      mkdirSync(join(dir, '.devcontainer'));
      mkdirSync(join(dir, '.git', 'info'), { recursive: true });
      const config = join(dir, '.devcontainer', 'devcontainer.json');
      writeFileSync(config, '{ // theirs\n "build": { "dockerfile": "Dockerfile" }, "mounts": ["source=a,target=/a,type=bind"], }');
      const file = overrideConfig(config, dir, ['source=/opt/n,target=/opt/gitspaces/node,type=bind,readonly']);
      overrideConfig(config, dir, ['source=/opt/n,target=/opt/gitspaces/node,type=bind,readonly']);
      expect(file).to.equal(join(dir, '.devcontainer', '.gitspaces-devcontainer.json'));
      expect(JSON.parse(readFileSync(file, 'utf8'))).to.deep.equal({ build: { dockerfile: 'Dockerfile' }, mounts: ['source=a,target=/a,type=bind', 'source=/opt/n,target=/opt/gitspaces/node,type=bind,readonly'] });
      expect(readFileSync(join(dir, '.git', 'info', 'exclude'), 'utf8')).to.equal('/.devcontainer/.gitspaces-devcontainer.json\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
