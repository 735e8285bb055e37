// SSH over the agent's HTTP port: the gateway carries SSH over a WebSocket-style upgrade to
// `/v1/ssh`, and this joins it to the agent's SSH server, so the SSH port need not be reachable
// from anywhere else.
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AgentConfig } from '../api/agent.ts';
import { endUpgrade } from './forward.ts';

export function bridgeToSsh(listen: AgentConfig['listen'], socket: Duplex, head: Buffer, onData: () => void): void {
  const { sshPort } = listen;
  const host = listen.address === '0.0.0.0' ? '127.0.0.1' : listen.address;
  const ssh = connect(sshPort, host, () => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: gitspaces-ssh\r\nConnection: Upgrade\r\n\r\n');
    if (head.length) ssh.write(head);
    socket.pipe(ssh).pipe(socket);
  });
  const close = () => {
    ssh.destroy();
    socket.destroy();
  };
  ssh.on('error', () => {
    if (!socket.destroyed) endUpgrade(socket, '502 Bad Gateway');
  });
  ssh.on('close', close);
  socket.on('error', close);
  socket.on('close', close);
  socket.on('data', onData);
}
