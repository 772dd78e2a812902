// A client socket's listeners: 'data', 'error' and 'close' go to the session the socket belongs to, which is kept on
// the socket itself. The three listeners are shared by every session, rather than three closures (and their context)
// per client that thousands of idle clients would each keep.
import type net from 'node:net';

/** What a client socket's events go to (its ClientSession). */
export interface SocketOwner {
  /** A chunk from the client. */
  onData(chunk: Buffer): void;
  /** The socket failed ('close' follows). */
  onSocketError(err: Error): void;
  onSocketClose(): void;
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

/** Send `socket`'s chunks, error and close to `owner`. */
export function listenToSocket(socket: net.Socket, owner: SocketOwner): void {
  (socket as OwnedSocket)[OWNER] = owner;
  socket.on('data', onSocketData);
  socket.on('error', onSocketError);
  socket.on('close', onSocketClose);
}
