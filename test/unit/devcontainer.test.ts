// devcontainer.json as the agent reads it without Docker.
import { expect } from 'chai';
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
    expect(plan.remoteUser).to.equal('node');
    expect(plan.vscode).to.deep.equal({ extensions: ['dbaeumer.vscode-eslint'], settings: { 'editor.tabSize': 2 } });
    expect(plan.notApplied).to.deep.equal(['image', 'features', 'remoteUser']);
  });

  it('is empty without a file', () => {
    const none = { initializeCommand: [], onCreateCommand: [], updateContentCommand: [], postCreateCommand: [], postStartCommand: [], postAttachCommand: [] };
    expect(planDevcontainer(undefined)).to.deep.equal({ env: {}, lifecycle: none, forwardPorts: [], vscode: { extensions: [], settings: {} }, notApplied: [] });
  });
});
