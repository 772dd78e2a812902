// A connection that arrives while shardgate shuts down: its SSLRequest/GSSENCRequest is declined so the client sends
// its startup packet in the clear, which is answered with the refusal (FATAL 57P03) — a clear error instead of a reset.
// A CancelRequest is still carried out: cancelling a long query helps the shutdown along.
import { Buffer } from 'node:buffer';
import type net from 'node:net';
import type { PgError } from '../errors/pg-error.js';
import type { CancelRegistry } from '../frontend/cancel-registry.js';
import { readStartupPacket } from '../frontend/startup.js';
import { SSL_NO } from '../protocol/messages.js';

const REFUSE_TIMEOUT_MS = 5_000;

export function refuseConnection(socket: net.Socket, refusal: PgError, cancels: CancelRegistry): void {
  socket.setTimeout(REFUSE_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', () => undefined);
  let pending: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length > 0) {
      const r = readStartupPacket(pending);
      if (!r.ok && r.incomplete) return;
      if (r.ok && (r.packet.kind === 'ssl' || r.packet.kind === 'gssenc')) {
        socket.write(SSL_NO);
        pending = r.rest;
        continue;
      }
      socket.removeListener('data', onData);
      if (r.ok && r.packet.kind === 'cancel') {
        cancels.cancel(r.packet.pid, r.packet.secret);
        socket.end();
        return;
      }
      socket.end(refusal.toBuffer());
      return;
    }
  };
  socket.on('data', onData);
}
