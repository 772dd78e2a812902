// A client socket's listeners: 'data', 'error', 'close' and the idle 'timeout' go to the session the socket belongs
// to, which is kept on the socket itself. The three listeners are shared by every session, rather than three closures (and their context)
// per client that thousands of idle clients would each keep.
import type net from 'node:net';

/** What a client socket's events go to (its ClientSession). */
export interface SocketOwner {
  /** A chunk from the client. */
  onData(chunk: Buffer): void;
  /** The socket failed ('close' follows). */
  onSocketError(err: Error): void;
  onSocketClose(): void;
  /** client_idle_timeout passed without traffic on the socket (the owner decides whether the client is idle). */
  onIdleTimeout(): void;
}

const OWNER = Symbol('shardgate.socketOwner');
type OwnedSocket = net.Socket & { [OWNER]?: SocketOwner };

function ownerOf(socket: net.Socket): SocketOwner | undefined {
  return (socket as OwnedSocket)[OWNER];
}

function onSocketData(this: net.Socket, chunk: Buffer): void {
  ownerOf(this)?.onData(chunk);
}

function onSocketError(this: net.Socket, err: Error): void {
  ownerOf(this)?.onSocketError(err);
}

function onSocketClose(this: net.Socket): void {
  ownerOf(this)?.onSocketClose();
}

function onSocketTimeout(this: net.Socket): void {
  ownerOf(this)?.onIdleTimeout();
}

/**
 * `owner.onIdleTimeout()` after every `ms` without traffic. A 'timeout' listener of its own, not setTimeout's
 * callback: Node registers that with once(), so a timeout skipped while the client was busy disarmed it for good.
 */
export function watchIdle(socket: net.Socket, ms: number): void {
  socket.setTimeout(ms);
  socket.on('timeout', onSocketTimeout);
}

/** Send `socket`'s chunks, error and close to `owner`. */
export function listenToSocket(socket: net.Socket, owner: SocketOwner): void {
  (socket as OwnedSocket)[OWNER] = owner;
  socket.on('data', onSocketData);
  socket.on('error', onSocketError);
  socket.on('close', onSocketClose);
}
