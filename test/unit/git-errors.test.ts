// What the agent reports when git fails: the line that says why.
import { expect } from 'chai';
import { gitError, gitSshCommand, sshEndpoint } from '../../src/agent/git.ts';

describe('git errors', () => {
  it('reports git\'s first fatal line, not the advice after it', () => {
    const out = "Cloning into '/home/gitspace/x'...\nfatal: '/nowhere' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n";
    expect(gitError(out)).to.equal("fatal: '/nowhere' does not appear to be a git repository");
    expect(gitError('error: pathspec \'nope\' did not match any file(s) known to git\n')).to.equal("error: pathspec 'nope' did not match any file(s) known to git");
    expect(gitError('something odd\nlast words\n')).to.equal('last words');
  });
});

describe('git over SSH: which server a URL names, and the ssh command git gets', () => {
  const table: [string, { host: string; port: number } | undefined][] = [
    ['ssh://git@github.com/acme/app.git', { host: 'github.com', port: 22 }],
    ['ssh://root@127.0.0.1:2222/srv/repo.git', { host: '127.0.0.1', port: 2222 }],
    ['ssh://git@[::1]:2200/repo', { host: '::1', port: 2200 }],
    ['git@gitlab.example.com:group/app.git', { host: 'gitlab.example.com', port: 22 }],
    ['https://github.com/acme/app.git', undefined],
    ['file:///srv/repo', undefined],
    ['git@host:/abs', undefined], // as the CRD: a scp-like path does not start with /
  ];
  for (const [url, want] of table) {
    it(url, () => {
      expect(sshEndpoint(url)).to.deep.equal(want);
    });
  }
  it('checks the host key strictly, with the key and known_hosts from the Secret only', () => {
    expect(gitSshCommand('/home/gitspace')).to.equal('ssh -i /home/gitspace/.ssh/gitspaces_git_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/home/gitspace/.ssh/gitspaces_known_hosts -o BatchMode=yes');
  });
});
