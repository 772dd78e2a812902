// What goes out to one client and how fast it is read: writes to its socket, whether writes are still pending and the
// wait for them to drain (backpressure on whoever feeds the client), and pausing / resuming the socket's input for the
// reasons that hold it (counted), among them the bound on requests queued behind the one in flight. The ClientSession
// owns the socket's lifetime, its timers and its status; this object only writes and holds input back. The sharded
// dispatch and the session's own paths share it.
import type net from 'node:net';
import { PIPELINE_MAX_BYTES, PIPELINE_MAX_FRAMES, type RequestBatch } from './request-batch.js';

export class ClientOutput {
  /** The client's socket (replaced once if the client upgrades to TLS during login). */
  socket: net.Socket;
  /** Reasons the client socket is not read right now (pauseInput / resumeInput). */
  private inputPauses = 0;
  /** Input paused: too many requests queued (until the batch drains). */
  private isQueueBacklogged = false;
  /** Made the first time the queue backs up (an idle client holds no closure of its own). */
  private onQueueDrained: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
  }

  /** Write bytes to the client; false = the socket is backpressured (wait for `onDrain`). */
  write(buf: Buffer): boolean {
    return this.socket.write(buf);
  }

  /** Bytes handed to `write` that the socket has not passed to the kernel yet. */
  hasPendingWrites(): boolean {
    return this.socket.writableLength > 0;
  }

  /** Call `resume` once the socket has drained (after `write` returned false). */
  onDrain(resume: () => void): void {
    this.socket.once('drain', resume);
  }

  /**
   * Stop reading the client (a request waits for a server, a server or a shard lags behind what it was sent):
   * counted, so that one reason ending does not resume reading while another still holds it.
   */
  pauseInput(): void {
    if (this.inputPauses++ === 0) this.socket.pause();
  }

  resumeInput(): void {
    if (this.inputPauses > 0 && --this.inputPauses === 0) this.socket.resume();
  }

  /**
   * Requests pipelined behind the one in flight stay queued in `batch` (a sharded session runs one at a time; a
   * transaction-mode session waits for a server): past PIPELINE_MAX_BYTES / _FRAMES the client is not read until the
   * queue is down to a quarter. Only complete requests count: a request still arriving is read on (max_message_size
   * bounds it).
   */
  limitBacklog(batch: RequestBatch): void {
    if (this.isQueueBacklogged || !batch.isFlushPoint) return;
    if (batch.bytes <= PIPELINE_MAX_BYTES && batch.length <= PIPELINE_MAX_FRAMES) return;
    this.isQueueBacklogged = true;
    this.pauseInput();
    batch.lowWaterBytes = PIPELINE_MAX_BYTES / 4;
    batch.lowWaterFrames = PIPELINE_MAX_FRAMES / 4;
    batch.onDrained = this.onQueueDrained ??= (): void => {
      this.isQueueBacklogged = false;
      this.resumeInput();
    };
  }
}
