// The page a browser sees at a Gitspace's address before (or instead of) a browser IDE: which
// Gitspace this is, how far set-up got, and how to connect from a desktop IDE.
import type { AgentConfig, AgentHealth } from '../api/agent.ts';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

export function landingPage(config: AgentConfig, health: AgentHealth): string {
  const { namespace, name } = config.gitspace;
  const steps = health.steps
    .map((s) => `<li class="${esc(s.status)}">${esc(s.name)} — ${esc(s.status)}${s.message ? `: ${esc(s.message)}` : ''}</li>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gitspace ${esc(namespace)}/${esc(name)}</title>
<style>body{font:15px system-ui,sans-serif;margin:2rem;max-width:50rem}code{background:#f3f3f3;padding:.1rem .3rem}
li.failed{color:#b00}li.done{color:#060}</style></head>
<body>
<h1 id="gitspace">Gitspace ${esc(namespace)}/${esc(name)}</h1>
<p>State: <strong id="state">${esc(health.state)}</strong> · IDE: ${esc(health.ide.type)} · repository <code>${esc(config.repository.url.replace(/\/\/[^@/]*@/, '//'))}</code></p>
<p>Checkout: <code id="checkout">${esc(health.checkout)}</code></p>
<h2>Set-up</h2><ol>${steps}</ol>
<p>Desktop IDEs (VS Code, Cursor, Windsurf, JetBrains Gateway) and terminals connect over SSH through the gateway: <code>gitspaces ssh-config --gateway &lt;gateway URL&gt; ${esc(name)}--${esc(namespace)}.&lt;gateway domain&gt; &gt;&gt; ~/.ssh/config</code> writes the entry they use (with your token in <code>GITSPACES_TOKEN</code>).</p>
</body></html>
`;
}
