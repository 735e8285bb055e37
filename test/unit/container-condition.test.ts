// ContainerReady from what an agent reports of its dev container: what it says is bounded (the VM
// is its user's), and a report of another shape than ours sets no condition.
import { expect } from 'chai';
import type { AgentHealth } from '../../src/api/index.ts';
import { containerCondition, workspaceOf } from '../../src/controllers/runner/vm-agent.ts';

describe('ContainerReady', () => {
  it('says which container runs, from which image, as whom and where', () => {
    expect(containerCondition({ found: true, notApplied: [], containerBuild: 'up', container: { id: '0123456789abcdef', image: 'vsc-repo-1', remoteUser: 'dev', workspaceFolder: '/workspaces/repo' } }))
      .to.deep.equal({ status: 'True', reason: 'Up', message: 'container 0123456789ab from vsc-repo-1: dev in /workspaces/repo' });
  });

  it('says what was not applied without a container runtime', () => {
    expect(containerCondition({ found: true, notApplied: ['image', 'features'], containerBuild: 'no-runtime' }))
      .to.deep.equal({ status: 'False', reason: 'NoContainerRuntime', message: 'devcontainer.json asks for a container and this VM has no container runtime: image, features not applied; the VM image is used' });
  });

  it('sets nothing without a container asked for, or for a report it does not understand', () => {
    expect(containerCondition({ found: true, notApplied: [], containerBuild: 'skipped' })).to.equal(undefined);
    expect(containerCondition(undefined)).to.equal(undefined);
    expect(containerCondition('up' as unknown as AgentHealth['devcontainer'])).to.equal(undefined);
  });

  it('bounds what a hostile agent says, whatever its size or type', () => {
    const huge = 'x'.repeat(1_000_000);
    const c = containerCondition({ found: true, notApplied: [], containerBuild: 'up', container: { id: huge, image: huge, remoteUser: { evil: true } as unknown as string, workspaceFolder: huge } });
    expect(c?.message.length).to.be.below(1_024);
    const n = containerCondition({ found: true, notApplied: Array.from({ length: 10_000 }, () => huge), containerBuild: 'no-runtime' });
    expect(n?.message.length).to.be.below(2_048);
  });
});

describe('the folder IDE links open (workspaceOf)', () => {
  const up = (workspaceFolder: unknown) => ({ containerBuild: 'up', container: { id: 'c1', remoteUser: 'dev', workspaceFolder } }) as unknown as AgentHealth['devcontainer'];
  const table: [string, Parameters<typeof workspaceOf>[0], string | undefined][] = [
    ['the checkout without a container', { checkout: '/home/gitspace/repo' }, '/home/gitspace/repo'],
    ['the container\'s workspace while it is up', { checkout: '/home/gitspace/repo', devcontainer: up('/workspaces/repo') }, '/workspaces/repo'],
    ['the checkout when the container is not up', { checkout: '/home/gitspace/repo', devcontainer: { containerBuild: 'no-runtime' } as AgentHealth['devcontainer'] }, '/home/gitspace/repo'],
    ['nothing for a relative path', { checkout: 'repo' }, undefined],
    ['nothing for a non-string', { checkout: 42 as unknown as string }, undefined],
    ['nothing for a container folder of 1025 characters', { checkout: '/home/gitspace/repo', devcontainer: up(`/${'x'.repeat(1024)}`) }, undefined],
  ];
  for (const [what, health, want] of table) {
    it(what, () => {
      expect(workspaceOf(health)).to.equal(want);
    });
  }
});
