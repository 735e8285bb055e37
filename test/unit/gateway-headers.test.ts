import { expect } from 'chai';
import { SECRET_HEADER } from '../../src/api/index.ts';
import { upstreamHeaders } from '../../src/gateway/proxy.ts';
import { normaliseHost } from '../../src/gateway/routes.ts';

describe('gateway hop headers', () => {
  const hop = { upstream: { host: '10.0.0.5', port: 47100 }, path: '/', secret: 's3cret', user: 'alice@example.com', clientIP: '198.51.100.7', host: 'app--dev.gs.example.com', proto: 'https' as const };

  it('drops what a client could use to speak for the gateway, and sets the gateway\'s own', () => {
    const out = upstreamHeaders({
      host: 'evil.example.com',
      connection: 'keep-alive, x-drop-me',
      'x-drop-me': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      te: 'trailers',
      'proxy-authorization': 'Basic x',
      forwarded: 'for=1.2.3.4',
      'x-forwarded-for': '1.2.3.4',
      'x-forwarded-host': 'evil.example.com',
      'x-forwarded-proto': 'http',
      'x-real-ip': '1.2.3.4',
      'x-gitspaces-user': 'root',
      [SECRET_HEADER]: 'guess',
      authorization: 'Bearer user-token',
      cookie: 'a=1; gitspaces_session=tok; gitspaces_sso=sid; __Host-gitspaces_sso=sid; b=2',
      accept: 'text/html',
    }, hop);
    expect(out).to.deep.equal({
      accept: 'text/html',
      cookie: 'a=1; b=2',
      host: 'app--dev.gs.example.com',
      'x-forwarded-for': '198.51.100.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'app--dev.gs.example.com',
      'x-gitspaces-user': 'alice@example.com',
      [SECRET_HEADER]: 's3cret',
    });
  });

  it('keeps an upgrade an upgrade, and drops an empty cookie header', () => {
    const out = upstreamHeaders({ connection: 'Upgrade', upgrade: 'websocket', cookie: 'gitspaces_session=tok', 'sec-websocket-key': 'k' }, hop, 'websocket');
    expect(out).to.include({ connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' });
    expect(out).to.not.have.property('cookie');
  });

  it('normalises hosts: case, port, trailing dot', () => {
    expect(normaliseHost('App--Dev.GS.example.com.:443')).to.equal('app--dev.gs.example.com');
    expect(normaliseHost(undefined)).to.equal('');
  });
});
