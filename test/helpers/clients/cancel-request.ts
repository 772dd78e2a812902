// A raw CancelRequest (protocol 1234.5678) for clients that do not expose one, e.g. node-postgres.
import net from 'node:net';

const CANCEL_REQUEST_CODE = 80_877_102;

/** Open a new connection to host:port, send CancelRequest(pid, secret), and resolve once the peer closes it. */
export function sendCancelRequest(host: string, port: number, pid: number, secret: number): Promise<void> {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  packet.writeInt32BE(pid, 8);
  packet.writeInt32BE(secret, 12);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => socket.end(packet));
    socket.setTimeout(5_000, () => socket.destroy(new Error('cancel request: no close within 5 s')));
    socket.once('error', reject);
    socket.once('close', (hadError) => {
      if (!hadError) resolve();
    });
    socket.resume();
  });
}
