// What the agent reports when git fails: the line that says why.
import { expect } from 'chai';
import { gitError } from '../../src/agent/git.ts';

describe('git errors', () => {
  it('reports git\'s first fatal line, not the advice after it', () => {
    const out = "Cloning into '/home/gitspace/x'...\nfatal: '/nowhere' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n";
    expect(gitError(out)).to.equal("fatal: '/nowhere' does not appear to be a git repository");
    expect(gitError('error: pathspec \'nope\' did not match any file(s) known to git\n')).to.equal("error: pathspec 'nope' did not match any file(s) known to git");
    expect(gitError('something odd\nlast words\n')).to.equal('last words');
  });
});
